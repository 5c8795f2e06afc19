package harness

import (
	"fmt"
	"runtime/metrics"
	"time"
)

// The runtime/metrics the sampler reads.
//
// The live heap is /gc/heap/live:bytes: the bytes of heap objects the most recent garbage
// collection marked live. It is the figure "what the heap really holds" that the library's
// accounting must track: it counts neither garbage awaiting collection nor free spans, and it
// is what GOGC paces the next collection from. It only changes at the end of each GC cycle, so
// the sampler catches every value as long as cycles are further apart than the sampling
// interval. /memory/classes/heap/objects:bytes (live objects plus garbage not yet swept) is
// recorded as well and drawn in the timeline as the heap's saw-tooth, but peaks are reported
// from the live heap.
const (
	metricLiveHeap    = "/gc/heap/live:bytes"
	metricHeapObjects = "/memory/classes/heap/objects:bytes"
	metricGCCycles    = "/gc/cycles/total:gc-cycles"
)

// Sample is one point of a run's timeline.
type Sample struct {
	// T is the time since the run started.
	T time.Duration `json:"t_ns"`
	// LiveHeap is /gc/heap/live:bytes; HeapObjects is /memory/classes/heap/objects:bytes.
	LiveHeap    int64 `json:"live_heap"`
	HeapObjects int64 `json:"heap_objects"`
	// Execution and Storage are the UnifiedManager's memory in use (both modes; storage includes
	// unroll memory). Zero in baseline runs.
	Execution int64 `json:"execution"`
	Storage   int64 `json:"storage"`
	// Consumers holds each consumer's Used, indexed like Timeline.Series (shorter when series
	// appeared later).
	Consumers []int64 `json:"consumers,omitempty"`
	// Records is the count passed to Env.AddRecords so far.
	Records int64 `json:"records"`
}

// Accounted is the memory the library accounts at the sample: execution plus storage.
func (s Sample) Accounted() int64 { return s.Execution + s.Storage }

// EventKind says what an Event marks.
type EventKind string

// The events of a timeline.
const (
	EventSpill EventKind = "spill"
	EventEvict EventKind = "evict"
)

// Event is a spill or eviction seen between two samples (the counters grew).
type Event struct {
	T     time.Duration `json:"t_ns"`
	Kind  EventKind     `json:"kind"`
	Count int64         `json:"count"`
	// Bytes is the spill bytes written in the interval (0 for evictions).
	Bytes int64 `json:"bytes"`
}

// Timeline is what the sampler recorded during one run.
type Timeline struct {
	Title string `json:"title"`
	// Budget is the run's memory budget (the line the accounted memory must stay under).
	Budget int64 `json:"budget"`
	// Series names the consumers, as "task <id>/<consumer>".
	Series  []string `json:"series,omitempty"`
	Samples []Sample `json:"samples"`
	Events  []Event  `json:"events,omitempty"`
}

// Progress is what a progress callback sees, about once a second.
type Progress struct {
	Elapsed time.Duration
	Records int64
}

// sampler reads the runtime's and the library's memory figures on a ticker goroutine. Its
// goroutine runs from startSampler until Stop, which always waits for it to exit.
type sampler struct {
	env      *Env
	start    time.Time
	interval time.Duration
	progress func(Progress)

	stop chan struct{}
	done chan struct{}

	// Owned by the goroutine until done is closed.
	rt       []metrics.Sample
	series   map[string]int
	tl       Timeline
	last     Counters
	gcStart  uint64
	gcCycles uint64
}

func startSampler(env *Env, interval time.Duration, progress func(Progress)) *sampler {
	s := &sampler{
		env: env, interval: interval, progress: progress,
		stop: make(chan struct{}), done: make(chan struct{}),
		rt:     []metrics.Sample{{Name: metricLiveHeap}, {Name: metricHeapObjects}, {Name: metricGCCycles}},
		series: map[string]int{},
	}
	s.tl.Budget = env.Budget
	s.start = time.Now()
	s.take() // the first sample and the GC count the run starts from
	s.gcStart = s.gcCycles
	go s.loop()
	return s
}

func (s *sampler) loop() {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	nextProgress := time.Second
	for {
		select {
		case <-s.stop:
			s.take()
			return
		case <-tick.C:
			smp := s.take()
			if s.progress != nil && smp.T >= nextProgress {
				nextProgress = smp.T + time.Second
				s.progress(Progress{Elapsed: smp.T, Records: smp.Records})
			}
		}
	}
}

// Stop takes a last sample, ends the goroutine and waits for it, and returns the timeline and
// the GC cycles that completed since the start.
func (s *sampler) Stop() (Timeline, int64) {
	close(s.stop)
	<-s.done
	return s.tl, int64(s.gcCycles - s.gcStart)
}

func (s *sampler) take() Sample {
	metrics.Read(s.rt)
	smp := Sample{
		T:           time.Since(s.start),
		LiveHeap:    int64(s.rt[0].Value.Uint64()),
		HeapObjects: int64(s.rt[1].Value.Uint64()),
		Records:     s.env.records.Load(),
	}
	s.gcCycles = s.rt[2].Value.Uint64()
	tasks, c := s.env.snapshot()
	if m := s.env.sampled.Load(); m != nil {
		smp.Execution, smp.Storage = m.ExecutionUsed(), m.StorageUsed()
	}
	for _, tm := range tasks {
		seen := map[string]int{}
		for _, u := range tm.ConsumerUsage() {
			name := fmt.Sprintf("task %d/%s", tm.ID(), u.Name)
			if seen[name]++; seen[name] > 1 {
				name = fmt.Sprintf("%s#%d", name, seen[name])
			}
			i, ok := s.series[name]
			if !ok {
				i = len(s.tl.Series)
				s.series[name] = i
				s.tl.Series = append(s.tl.Series, name)
			}
			for len(smp.Consumers) <= i {
				smp.Consumers = append(smp.Consumers, 0)
			}
			smp.Consumers[i] = u.Used
		}
	}
	if d := c.Spills - s.last.Spills; d > 0 {
		s.tl.Events = append(s.tl.Events, Event{T: smp.T, Kind: EventSpill, Count: d, Bytes: c.SpillBytes - s.last.SpillBytes})
	}
	if d := c.Evictions - s.last.Evictions; d > 0 {
		s.tl.Events = append(s.tl.Events, Event{T: smp.T, Kind: EventEvict, Count: d})
	}
	s.last = c
	s.tl.Samples = append(s.tl.Samples, smp)
	return smp
}
