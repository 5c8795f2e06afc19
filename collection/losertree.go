package collection

import "math"

// loserTree is the k-way merge of the package's three merges (Merge, the hash merge of
// ExternalAppendOnlyMap and ExternalSorter, the grouping merge of ExternalGrouper): a tournament
// tree of losers (Knuth, TAOCP vol. 3, 5.4.1) over the current elements, or heads, of k inputs,
// which differ only in how they compare heads. Replacing the head of one input replays the
// matches on its path to the root: about log2(k) comparisons, one per level, against the
// binary heap's two.
//
// Heads are ordered by a uint64 key given with each head, then by cmp (if not nil), then by
// input index, so equal heads leave in input order (the merge is stable); inputs without a head
// (exhausted, or taken out by the caller) come last. The key is the fast path: the nodes of the
// tree hold it beside the input's index, so a match whose keys differ is one integer comparison
// on the node, with neither a call nor a look at the heads. The hash merges order by hash, which
// is their key (cmp only breaks the grouping merge's ties of hash); Merge, whose elements have
// no key, gives 0 and compares every match with cmp.
//
// Measured against the merges before this tree (commit 15d6c6b: a binary heap under Merge and
// the grouping merge, the hash merge's own tree of hashes) and the tree without keys (53a5aa7),
// on BenchmarkMerge's 64Ki elements over k inputs: CPU ms per merge at GOMAXPROCS=1, min of 5
// interleaved runs of each (perf stat task-clock of -test.benchtime 100x less 1x, on a loaded
// 2-core machine):
//
//	               k=2: sorted hash group    k=16: sorted hash group    k=128: sorted hash group
//	15d6c6b (heaps)     0.94  1.39  4.86           2.71  2.81  9.14            5.09  4.35 12.72
//	53a5aa7 (no keys)   1.14  1.62  7.10           2.84  3.68 11.53            5.31  5.88 15.86
//	keyed nodes         1.08  1.43  4.68           2.76  2.68  6.00            5.35  4.96  7.07
//
// Merge (sorted), which has no key and calls its comparator at every match, stays within 15% of
// the binary heap; the hash merge matches its own tree (within the noise: another round gave
// 4.56 and 4.59 at k=128), and the grouping merge is up to 1.8 times faster than its heap.
type loserTree[T any] struct {
	cmp   func(a, b T) int // nil: the key alone orders heads
	heads []T
	tree  []loserNode // tree[0]: the winner; tree[1:]: the losers of the matches
}

// loserNode is an input as the tree holds it: its head's key, its index and whether it has a
// head.
type loserNode struct {
	key  uint64
	src  int32 // -1: no match played yet here, while the tree is built
	dead bool  // no head: math.MaxUint64 in key, so that only a tie of keys looks at dead
}

// newLoserTree returns the tree of k inputs ordered by key and then by cmp, which may be nil;
// the caller builds it by calling set or drop once for each input, in order, before calling
// winner.
func newLoserTree[T any](k int, cmp func(a, b T) int) loserTree[T] {
	t := loserTree[T]{cmp: cmp, heads: make([]T, k), tree: make([]loserNode, k)}
	for i := range t.tree {
		t.tree[i].src = -1
	}
	return t
}

// set makes v, of the given key, the head of input i.
func (t *loserTree[T]) set(i int, key uint64, v T) {
	t.heads[i] = v
	t.replay(loserNode{key: key, src: int32(i)})
}

// drop leaves input i without a head (until set again).
func (t *loserTree[T]) drop(i int) {
	var zero T
	t.heads[i] = zero
	t.replay(loserNode{key: math.MaxUint64, src: int32(i), dead: true})
}

// winner returns the input with the smallest head, or -1 if no input has a head.
func (t *loserTree[T]) winner() int {
	if len(t.tree) == 0 || t.tree[0].dead {
		return -1
	}
	return int(t.tree[0].src)
}

// winnerKeyShared reports whether the head of another input has the key of the winner's head.
// The runner-up lost its last match to the winner, so it is one of the losers on the winner's
// path, and if any head shares the winner's key, the runner-up does: it is enough to look at
// that path, without replaying anything.
func (t *loserTree[T]) winnerKeyShared() bool {
	w := t.tree[0]
	for n := (int(w.src) + len(t.tree)) / 2; n > 0; n /= 2 {
		if l := t.tree[n]; l.key == w.key && !l.dead {
			return true
		}
	}
	return false
}

// replay moves w, an input whose head changed, from its leaf up the tree; the overall winner
// lands in tree[0]. While the tree is built w stops at the first node without a match.
func (t *loserTree[T]) replay(w loserNode) {
	for n := (int(w.src) + len(t.tree)) / 2; n > 0; n /= 2 {
		l := t.tree[n]
		if l.src < 0 {
			t.tree[n] = w
			return
		}
		var lFirst bool // l's head comes before w's
		switch {
		case l.key != w.key:
			lFirst = l.key < w.key
		case l.dead || w.dead:
			lFirst = w.dead && (!l.dead || l.src < w.src)
		default:
			c := 0
			if t.cmp != nil {
				c = t.cmp(t.heads[l.src], t.heads[w.src])
			}
			lFirst = c < 0 || c == 0 && l.src < w.src
		}
		if lFirst {
			t.tree[n], w = w, l
		}
	}
	t.tree[0] = w
}
