package memory

import "github.com/google/btree"

// VictimOrder decides which consumer a TaskManager asks to spill next when a request falls short
// (the TreeMap policy inside Spark's TaskMemoryManager.acquireExecutionMemory). The TaskManager
// collects the task's consumers of the requester's mode that hold memory, ranks each once with
// Rank, keeps them sorted in a google/btree (Victims), and calls Choose until the request is met
// or no candidate is left. A candidate that releases nothing is dropped; one that releases memory
// stays under its old rank and may be chosen again.
type VictimOrder interface {
	// Rank is the sort key of candidate c holding used bytes when requester is short of memory.
	Rank(c Consumer, used int64, requester Consumer) int64
	// Choose returns the candidate to ask next for need more bytes; v is never empty.
	Choose(v *Victims, need int64) Victim
}

// SparkOrder is Spark's spill order and the default: rank by used bytes with the requester ranked
// 0 (so it spills last); pick the smallest candidate whose rank covers the shortfall, else the
// largest. Among equal ranks the candidate added last is picked first.
type SparkOrder struct{}

// Rank is used bytes, or 0 for the requester.
func (SparkOrder) Rank(c Consumer, used int64, requester Consumer) int64 {
	if c == requester {
		return 0
	}
	return used
}

// Choose is TreeMap.ceilingEntry(need), else lastEntry.
func (SparkOrder) Choose(v *Victims, need int64) Victim {
	if c, ok := v.Ceiling(need); ok {
		return c
	}
	return v.Last()
}

// LargestFirstOrder spills the consumer holding the most memory first, the requester included on
// equal terms. It is not Spark's order; it is here to be benchmarked against it.
type LargestFirstOrder struct{}

// Rank is used bytes.
func (LargestFirstOrder) Rank(_ Consumer, used int64, _ Consumer) int64 { return used }

// Choose picks the largest.
func (LargestFirstOrder) Choose(v *Victims, _ int64) Victim { return v.Last() }

// RequesterFirstOrder asks the requester to spill itself first, then the others largest first.
// It is not Spark's order; it is here to be benchmarked against it.
type RequesterFirstOrder struct{}

// Rank is used bytes, with the requester above everyone.
func (RequesterFirstOrder) Rank(c Consumer, used int64, requester Consumer) int64 {
	if c == requester {
		return 1<<63 - 1
	}
	return used
}

// Choose picks the highest rank.
func (RequesterFirstOrder) Choose(v *Victims, _ int64) Victim { return v.Last() }

// Victim is one spill candidate.
// Spark has no such type: TaskMemoryManager keeps its candidates in a TreeMap keyed by used memory.
type Victim struct {
	Consumer Consumer
	Rank     int64
	seq      int // insertion order, to break ties like Spark's per-key list
}

func victimLess(a, b Victim) bool {
	if a.Rank != b.Rank {
		return a.Rank < b.Rank
	}
	return a.seq < b.seq
}

// Victims is the ordered set of spill candidates of one shortfall, sorted by Rank in a
// google/btree. Among equal ranks the candidate added last comes first (Spark's list[last]).
type Victims struct {
	tree *btree.BTreeG[Victim]
	seq  int
}

func newVictims() *Victims {
	return &Victims{tree: btree.NewG(8, victimLess)}
}

func (v *Victims) reset() {
	v.tree.Clear(true)
	v.seq = 0
}

func (v *Victims) add(c Consumer, rank int64) {
	v.seq++
	v.tree.ReplaceOrInsert(Victim{Consumer: c, Rank: rank, seq: v.seq})
}

func (v *Victims) remove(c Victim) { v.tree.Delete(c) }

// Len is the number of candidates left.
func (v *Victims) Len() int { return v.tree.Len() }

// Ceiling returns the candidate with the smallest rank >= rank (TreeMap.ceilingEntry).
func (v *Victims) Ceiling(rank int64) (Victim, bool) {
	var first Victim
	found := false
	v.tree.AscendGreaterOrEqual(Victim{Rank: rank, seq: -1}, func(c Victim) bool {
		first, found = c, true
		return false
	})
	if !found {
		return Victim{}, false
	}
	return v.lastOfRank(first.Rank), true
}

// Last returns the candidate with the highest rank (TreeMap.lastEntry); v must not be empty.
func (v *Victims) Last() Victim {
	c, _ := v.tree.Max()
	return c
}

// First returns the candidate with the lowest rank (TreeMap.firstEntry); v must not be empty.
func (v *Victims) First() Victim {
	c, _ := v.tree.Min()
	return v.lastOfRank(c.Rank)
}

// lastOfRank is the latest-added candidate among those of the given (present) rank.
func (v *Victims) lastOfRank(rank int64) Victim {
	var c Victim
	v.tree.DescendLessOrEqual(Victim{Rank: rank, seq: int(^uint(0) >> 1)}, func(x Victim) bool {
		c = x
		return false
	})
	return c
}
