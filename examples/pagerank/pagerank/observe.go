package pagerank

import (
	"weak"

	"github.com/spillway/spillway/memory"
)

// Phase is the part of the job a task is in.
type Phase uint8

const (
	// PhaseEdges: a map task of the links stage reads its split of the edges and writes them to
	// the links shuffle (source -> destination).
	PhaseEdges Phase = iota
	// PhaseJoin: a task of an iteration inserts its links partition and the contributions of the
	// previous iteration into the join map.
	PhaseJoin
	// PhaseContribute: the task reads the join map and writes every page's contributions to the
	// iteration's shuffle, combining them by destination on the map side.
	PhaseContribute
	// PhaseRanks: a task of the last stage sums the last iteration's contributions into ranks.
	PhaseRanks
)

// String returns the phase's name.
func (p Phase) String() string {
	switch p {
	case PhaseEdges:
		return "edges"
	case PhaseJoin:
		return "join"
	case PhaseContribute:
		return "contribute"
	case PhaseRanks:
		return "ranks"
	}
	return "unknown"
}

// Event describes where a task is when an Observer or Config.Fault is called.
type Event struct {
	Phase Phase
	// Iteration is the PageRank iteration, from 1; 0 in PhaseEdges, Iterations+1 in PhaseRanks.
	Iteration int
	// Partition is the task's partition.
	Partition int
	// Records is the number of records the task has handled in this phase so far.
	Records int64
	// Task is the task's memory manager (for its consumers' usage and peak).
	Task *memory.TaskManager
}

// DefaultObserveEvery is Observer.Every's default.
const DefaultObserveEvery = 4096

// Observer receives events from the job's tasks, in the task's goroutine, for tests and
// monitoring (sampling the live heap, checking what a task holds). Every field may be nil. The
// callbacks run concurrently from several tasks and must be safe for that; they must not block
// for long, and must not keep what they are given beyond the call (except through weak
// pointers).
type Observer struct {
	// Every is the number of records between two Progress calls of a task. 0 means
	// DefaultObserveEvery.
	Every int64
	// Progress is called when a task enters a phase (Records 0) and after every Every records
	// of the phase.
	Progress func(Event)
	// JoinCombiner is called with a weak pointer to every combiner the join map of a task
	// creates (a page's lists of values by input; the pointer is to the first list). Combiners
	// are referenced only by the join map's in-memory table (and by the
	// record being read), so once the map was spilled or read they must become collectable.
	JoinCombiner func(Event, weak.Pointer[[]JoinValue])
	// JoinForcedSpill is called when the task's join map was force-spilled while being read:
	// another consumer of the task (the contribution writer's sorter) needed its memory
	// (SPARK-22713). It is called right after the spill, before the next record is read, so
	// everything the map held in memory and did not hand out should be garbage by then.
	JoinForcedSpill func(Event)
}

// observer wraps an optional *Observer with the counting every task phase needs.
type observer struct {
	o      *Observer
	fault  func(Event) error
	every  int64
	ev     Event
	next   int64 // Records at the next Progress call
	active bool  // anything to call per record
}

func newObserver(o *Observer, fault func(Event) error, phase Phase, iteration, partition int, tm *memory.TaskManager) *observer {
	ob := &observer{o: o, fault: fault, ev: Event{Phase: phase, Iteration: iteration, Partition: partition, Task: tm}}
	if o != nil {
		ob.every = o.Every
		if ob.every <= 0 {
			ob.every = DefaultObserveEvery
		}
		ob.next = ob.every
		if o.Progress != nil {
			o.Progress(ob.ev)
		}
	}
	ob.active = fault != nil || (o != nil && o.Progress != nil)
	return ob
}

// record counts one record and calls the fault hook and Progress as due.
func (ob *observer) record() error {
	ob.ev.Records++
	if !ob.active {
		return nil
	}
	if ob.fault != nil {
		if err := ob.fault(ob.ev); err != nil {
			return err
		}
	}
	if ob.o != nil && ob.o.Progress != nil && ob.ev.Records >= ob.next {
		ob.next += ob.every
		ob.o.Progress(ob.ev)
	}
	return nil
}
