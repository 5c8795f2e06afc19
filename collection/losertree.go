package collection

// loserTree is the k-way merge of the package's three merges (Merge, the hash merge of
// ExternalAppendOnlyMap and ExternalSorter, the grouping merge of ExternalGrouper): a tournament
// tree of losers (Knuth, TAOCP vol. 3, 5.4.1) over the current elements, or heads, of k inputs,
// which differ only in how they compare heads. Replacing the head of one input replays the
// matches on its path to the root: about log2(k) comparisons, one per level, against the
// binary heap's two.
//
// Heads are ordered by cmp, then by input index, so equal heads leave in input order (the merge
// is stable); inputs without a head (exhausted, or taken out by the caller) come last.
type loserTree[T any] struct {
	cmp   func(a, b T) int
	heads []T
	live  []bool // input i has a head
	tree  []int  // tree[0]: the winner; tree[1:]: the losers of the matches; -1 while built
}

// newLoserTree returns the tree of k inputs; the caller builds it by calling set or drop once for
// each input, in order, before calling winner.
func newLoserTree[T any](k int, cmp func(a, b T) int) loserTree[T] {
	t := loserTree[T]{cmp: cmp, heads: make([]T, k), live: make([]bool, k), tree: make([]int, k)}
	for i := range t.tree {
		t.tree[i] = -1
	}
	return t
}

// before reports whether input a's head comes before input b's.
func (t *loserTree[T]) before(a, b int) bool {
	if !t.live[a] {
		return false
	}
	if !t.live[b] {
		return true
	}
	c := t.cmp(t.heads[a], t.heads[b])
	return c < 0 || c == 0 && a < b
}

// set makes v the head of input i.
func (t *loserTree[T]) set(i int, v T) {
	t.heads[i], t.live[i] = v, true
	t.replay(i)
}

// drop leaves input i without a head (until set again).
func (t *loserTree[T]) drop(i int) {
	var zero T
	t.heads[i], t.live[i] = zero, false
	t.replay(i)
}

// winner returns the input with the smallest head, or -1 if no input has a head.
func (t *loserTree[T]) winner() int {
	if len(t.tree) == 0 || !t.live[t.tree[0]] {
		return -1
	}
	return t.tree[0]
}

// replay moves input s, whose head changed, from its leaf up the tree; the overall winner lands
// in tree[0]. While the tree is built (nodes -1) s stops at the first empty node.
func (t *loserTree[T]) replay(s int) {
	winner := s
	for n := (s + len(t.tree)) / 2; n > 0; n /= 2 {
		switch loser := t.tree[n]; {
		case loser < 0:
			t.tree[n] = winner
			return
		case t.before(loser, winner):
			t.tree[n], winner = winner, loser
		}
	}
	t.tree[0] = winner
}
