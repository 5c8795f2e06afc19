package collection

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"weak"

	"github.com/spillway/spillway/estimator"
	"github.com/stretchr/testify/require"
)

var (
	_ PartitionedCollection[string, int] = (*PartitionedPairBuffer[string, int])(nil)
	_ PartitionedCollection[string, int] = (*PartitionedAppendOnlyMap[string, int])(nil)
)

func comparePartitioned[K cmp.Ordered, V any](a, b PartitionedPair[K, V]) int {
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

func TestPartitionedPairBuffer_Sorted(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	for _, tc := range []struct {
		byKey             bool
		partitions, items int
	}{
		{true, 5, 1000}, {false, 5, 1000}, {true, 1, 1000}, {false, 1, 1000},
		{true, 997, 1000}, {false, 997, 1000}, // most partitions empty or holding one record
		{true, 5, 0}, {false, 5, 0},
	} {
		byKey := tc.byKey
		b := NewPartitionedPairBuffer[int, int]()
		var want []PartitionedPair[int, int]
		for i := range tc.items {
			p := PartitionedPair[int, int]{Partition: int32(rng.IntN(tc.partitions)), Key: rng.IntN(100), Value: i}
			require.NoError(t, b.Insert(p.Partition, p.Key, p.Value))
			want = append(want, p)
		}
		require.Equal(t, tc.items, b.Len())
		var keyCmp func(a, b int) int
		if byKey {
			keyCmp = cmp.Compare[int]
		}
		got, err := Collect(b.PartitionedDestructiveSortedIterator(keyCmp))
		require.NoError(t, err)
		if byKey {
			require.True(t, slices.IsSortedFunc(got, comparePartitioned[int, int]))
		} else {
			require.True(t, slices.IsSortedFunc(got, func(a, b PartitionedPair[int, int]) int { return cmp.Compare(a.Partition, b.Partition) }))
		}
		byValue := func(a, b PartitionedPair[int, int]) int { return cmp.Compare(a.Value, b.Value) }
		slices.SortFunc(got, byValue)
		require.Equal(t, want, got, "the same records")
		require.PanicsWithValue(t, "collection: buffer state is invalid from destructive sorting", func() { _ = b.Insert(0, 0, 0) })
		require.Panics(t, func() { b.PartitionedDestructiveSortedIterator(nil) })
	}
}

func TestPartitionedPairBuffer_Full(t *testing.T) {
	b := NewPartitionedPairBuffer[int, int]()
	b.vec.maxCapacity = 100
	for i := range 100 {
		require.NoError(t, b.Insert(0, i, i))
	}
	err := b.Insert(0, 100, 100)
	require.ErrorIs(t, err, ErrBufferFull)
	require.ErrorContains(t, err, "can't insert more than 100 elements")
	require.Equal(t, 100, b.Len())
}

// The buffer's destructive iterator releases the records it has passed (SPARK-22713).
func TestPartitionedPairBuffer_IteratorReleases(t *testing.T) {
	type big struct{ payload [1 << 10]byte }
	b := NewPartitionedPairBuffer[int, *big]()
	weaks := make([]weak.Pointer[big], 100)
	for i := range weaks {
		x := &big{}
		weaks[i] = weak.Make(x)
		require.NoError(t, b.Insert(int32(i%3), i, x))
	}
	it := b.PartitionedDestructiveSortedIterator(cmp.Compare[int])
	var read []int
	for range 40 {
		require.True(t, it.Next())
		read = append(read, it.Value().Key)
	}
	require.True(t, it.Next())
	var readWeaks []weak.Pointer[big]
	for _, k := range read {
		readWeaks = append(readWeaks, weaks[k])
	}
	require.True(t, collected(readWeaks...), "records %v still reachable", read)
	require.NoError(t, it.Close())
	require.True(t, collected(weaks...), "records reachable after Close")
}

func TestPartitionedAppendOnlyMap_Model(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	type pk struct {
		p int32
		k string
	}
	hashers := map[string]Hasher[string]{
		"seeded":    {},
		"collide":   HasherFunc(func(s string) uint64 { return uint64(len(s) % 2) }),
		"constant0": HasherFunc(func(string) uint64 { return 0 }),
	}
	for name, h := range hashers {
		for _, ord := range []string{"partition", "key", "hash"} {
			t.Run(name+"/"+ord, func(t *testing.T) {
				m := NewPartitionedAppendOnlyMap[string, int](h)
				model := map[pk]int{}
				for i := range 1500 {
					p, k := int32(rng.IntN(4)), strconv.Itoa(rng.IntN(300))
					switch rng.IntN(3) {
					case 0:
						require.NoError(t, m.Update(p, k, i))
						model[pk{p, k}] = i
					case 1:
						old, had := model[pk{p, k}]
						got, err := m.ChangeValue(p, k, func(mhad bool, mold int) int {
							require.Equal(t, had, mhad)
							require.Equal(t, old, mold)
							return mold + i
						})
						require.NoError(t, err)
						model[pk{p, k}] = old + i
						require.Equal(t, old+i, got)
					case 2:
						got, ok := m.Get(p, k)
						want, had := model[pk{p, k}]
						require.Equal(t, had, ok)
						require.Equal(t, want, got)
					}
				}
				require.Equal(t, len(model), m.Len())
				require.Positive(t, m.EstimateSize())
				hh := m.Hasher()
				require.Equal(t, hh.Hash("42"), m.HashOf("42"))
				var it Iterator[PartitionedPair[string, int]]
				var order func(a, b PartitionedPair[string, int]) int
				switch ord {
				case "partition":
					it = m.PartitionedDestructiveSortedIterator(nil)
					order = func(a, b PartitionedPair[string, int]) int { return cmp.Compare(a.Partition, b.Partition) }
				case "key":
					it = m.PartitionedDestructiveSortedIterator(cmp.Compare[string])
					order = comparePartitioned[string, int]
				case "hash":
					it = m.PartitionedDestructiveSortedByHash()
					order = func(a, b PartitionedPair[string, int]) int {
						if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
							return c
						}
						return cmp.Compare(hh.Hash(a.Key), hh.Hash(b.Key))
					}
				}
				got, err := Collect(it)
				require.NoError(t, err)
				require.True(t, slices.IsSortedFunc(got, order))
				gotMap := map[pk]int{}
				for _, r := range got {
					gotMap[pk{r.Partition, r.Key}] = r.Value
				}
				require.Len(t, got, len(model))
				require.Equal(t, model, gotMap)
				require.PanicsWithValue(t, destroyedMsg, func() { m.Get(0, "1") })
			})
		}
	}
}

// sortPairsByKey sorts like slices.SortFunc on every input shape, its heapsort fallback
// included, and keeps every pair.
func TestSortPairsByKey(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 4))
	shapes := map[string]func(i, n int) int{
		"random":    func(int, int) int { return rng.Int() },
		"few":       func(int, int) int { return rng.IntN(4) },
		"equal":     func(int, int) int { return 7 },
		"sorted":    func(i, _ int) int { return i },
		"reversed":  func(i, n int) int { return n - i },
		"sawtooth":  func(i, _ int) int { return i % 37 },
		"organpipe": func(i, n int) int { return min(i, n-i) },
		"almost": func(i, _ int) int {
			if rng.IntN(50) == 0 {
				return rng.Int()
			}
			return i
		},
	}
	for name, shape := range shapes {
		for _, n := range []int{0, 1, 2, 3, 12, 13, 50, 127, 128, 1000, 5000} {
			in := make([]Pair[int, int], n)
			for i := range in {
				in[i] = Pair[int, int]{Key: shape(i, n), Value: i}
			}
			byKeyValue := func(a, b Pair[int, int]) int {
				return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value))
			}
			want := slices.Clone(in)
			slices.SortFunc(want, byKeyValue)
			for _, depth := range []int{-1, 0, 1} { // -1: sortPairsByKey's own depth limit
				got := slices.Clone(in)
				if depth < 0 {
					sortPairsByKey(got, cmp.Compare[int])
				} else {
					quickSortPairs(got, cmp.Compare[int], depth)
				}
				require.True(t, slices.IsSortedFunc(got, func(a, b Pair[int, int]) int { return cmp.Compare(a.Key, b.Key) }),
					"%s, %d pairs, depth %d", name, n, depth)
				slices.SortFunc(got, byKeyValue) // the same pairs
				require.Equal(t, want, got, "%s, %d pairs, depth %d", name, n, depth)
			}
		}
	}
	// A comparator that is no order at all: no panic, no pair lost.
	in := make([]Pair[int, int], 3000)
	for i := range in {
		in[i] = Pair[int, int]{Key: i, Value: i}
	}
	got := slices.Clone(in)
	sortPairsByKey(got, func(int, int) int { return rng.IntN(3) - 1 })
	slices.SortFunc(got, func(a, b Pair[int, int]) int { return cmp.Compare(a.Key, b.Key) })
	require.Equal(t, in, got)
}

// A buffer of partition 0 only keeps no partition column; the first other partition adds it,
// with the records inserted before it in partition 0, and the size estimate counts it at once.
func TestPartitionedPairBuffer_PartitionColumn(t *testing.T) {
	b := NewPartitionedPairBuffer[int64, int64]()
	for i := range int64(100) {
		require.NoError(t, b.Insert(0, 100-i, i))
	}
	require.Nil(t, b.vec.data.parts)
	var est estimator.Estimator
	require.Equal(t, est.Estimate(b.vec.data.pairs), b.EstimateSize(), "a fresh sample after the resize")
	require.NoError(t, b.Insert(2, 5, 100))
	require.Len(t, b.vec.data.parts, 101)
	require.Equal(t, est.Estimate(b.vec.data.pairs)+est.Estimate(b.vec.data.parts), b.EstimateSize(), "a fresh sample with the column")
	require.NoError(t, b.Insert(1, 5, 101))
	require.PanicsWithValue(t, "collection: negative partition -1", func() { _ = b.Insert(-1, 0, 0) })
	require.Equal(t, 102, b.Len())
	got, err := Collect(b.PartitionedDestructiveSortedIterator(cmp.Compare[int64]))
	require.NoError(t, err)
	want := []PartitionedPair[int64, int64]{}
	for i := int64(99); i >= 0; i-- {
		want = append(want, PartitionedPair[int64, int64]{Partition: 0, Key: 100 - i, Value: i})
	}
	want = append(want, PartitionedPair[int64, int64]{Partition: 1, Key: 5, Value: 101}, PartitionedPair[int64, int64]{Partition: 2, Key: 5, Value: 100})
	require.Equal(t, want, got)
}

// Records inserted already grouped by partition stay where they are (no swaps).
func TestGroupByPartition_Grouped(t *testing.T) {
	pairs := []Pair[int, int]{{Key: 3, Value: 0}, {Key: 1, Value: 1}, {Key: 2, Value: 2}, {Key: 0, Value: 3}, {Key: 5, Value: 4}}
	parts := []int32{0, 0, 2, 2, 4}
	ends := groupByPartition(pairs, parts)
	require.Equal(t, []int{2, 2, 4, 4, 5}, ends)
	require.Equal(t, []Pair[int, int]{{Key: 3, Value: 0}, {Key: 1, Value: 1}, {Key: 2, Value: 2}, {Key: 0, Value: 3}, {Key: 5, Value: 4}}, pairs)
	parts = []int32{4, 0, 2, 0, 2}
	ends = groupByPartition(pairs, parts)
	require.Equal(t, []int{2, 2, 4, 4, 5}, ends)
	require.Equal(t, []int32{0, 0, 2, 2, 4}, parts)
	require.ElementsMatch(t, []Pair[int, int]{{Key: 1, Value: 1}, {Key: 0, Value: 3}}, pairs[:2])
	require.ElementsMatch(t, []Pair[int, int]{{Key: 2, Value: 2}, {Key: 5, Value: 4}}, pairs[2:4])
	require.Equal(t, Pair[int, int]{Key: 3, Value: 0}, pairs[4])
	require.Equal(t, []int{0}, groupByPartition[int, int](nil, nil))
}

// The sorted iterator's fill hands out the same records as Next, across partition boundaries
// and whatever the batch size, and keeps no reference to what it handed out.
func TestPartitionedPairBuffer_Fill(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 5))
	type big struct{ payload [1 << 10]byte }
	for _, partitions := range []int{1, 2, 7} {
		b := NewPartitionedPairBuffer[int, *big]()
		var want []PartitionedPair[int, *big] // values nil: the records' partition and key
		weaks := map[int]weak.Pointer[big]{}
		for i := range 500 {
			p, v := int32(rng.IntN(partitions)*2), &big{} // odd partitions empty
			require.NoError(t, b.Insert(p, i, v))
			want = append(want, PartitionedPair[int, *big]{Partition: p, Key: i})
			weaks[i] = weak.Make(v)
		}
		slices.SortFunc(want, comparePartitioned[int, *big])
		it := b.PartitionedDestructiveSortedIterator(cmp.Compare[int])
		f, ok := it.(recordFiller[int, *big])
		require.True(t, ok)
		var got []PartitionedPair[int, *big]
		checked := false
		add := func(rs ...PartitionedPair[int, *big]) {
			for _, r := range rs {
				require.Equal(t, weaks[r.Key].Value(), r.Value, "key %d", r.Key)
				r.Value = nil
				got = append(got, r)
			}
		}
		for {
			if rng.IntN(4) == 0 {
				if !it.Next() {
					break
				}
				add(it.Value())
				continue
			}
			dst := make([]PartitionedPair[int, *big], 1+rng.IntN(70))
			n := f.fill(dst)
			if n == 0 {
				break
			}
			add(dst[:n]...)
			clear(dst)
			if !checked && len(got) >= 250 {
				checked = true
				var passed []weak.Pointer[big]
				for _, r := range got {
					passed = append(passed, weaks[r.Key])
				}
				require.True(t, collected(passed...), "records handed out still referenced by the iterator")
			}
		}
		require.True(t, checked)
		require.Equal(t, want, got, "%d partitions", partitions)
		require.Zero(t, f.fill(make([]PartitionedPair[int, *big], 3)))
		require.False(t, it.Next())
	}
}

// sortByPartitionAndHash orders a partKey table by (partition, hash) like a comparator sort on
// every partition shape — the partition grouping's swap cycles, input already grouped, a
// single partition, and partition ids far above the slot count (the comparator fallback) — and
// keeps every slot.
func TestSortByPartitionAndHash(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 5))
	type sl = slot[partKey[int64], int]
	shapes := map[string]func(i, n int) int32{
		"random":   func(int, int) int32 { return int32(rng.IntN(7)) },
		"grouped":  func(i, n int) int32 { return int32(4 * i / n) },
		"reversed": func(i, n int) int32 { return int32(4 - 4*i/n) },
		"one":      func(int, int) int32 { return 3 },
		"sparse":   func(int, int) int32 { return int32(rng.IntN(2)) * (1 << 30) },
	}
	hashes := map[string]func() uint64{
		"uniform":  func() uint64 { return rng.Uint64() | 1 },
		"collide":  func() uint64 { return uint64(rng.IntN(5)) + 1 },
		"lowbytes": func() uint64 { return uint64(rng.IntN(1<<12)) + 1 },
	}
	for sname, part := range shapes {
		for hname, hash := range hashes {
			for _, n := range []int{0, 1, 31, 33, 500, 5000} {
				t.Run(sname+"/"+hname+"/"+strconv.Itoa(n), func(t *testing.T) {
					data := make([]sl, n)
					for i := range data {
						data[i] = sl{hash: hash(), key: partKey[int64]{part(i, n), int64(i)}, val: i}
					}
					want := slices.Clone(data)
					sortByPartitionAndHash(data)
					order := func(x, y sl) int {
						if c := cmp.Compare(x.key.partition, y.key.partition); c != 0 {
							return c
						}
						return cmp.Compare(x.hash, y.hash)
					}
					require.True(t, slices.IsSortedFunc(data, order))
					byKey := func(x, y sl) int { return cmp.Compare(x.key.key, y.key.key) }
					slices.SortFunc(data, byKey)
					require.Equal(t, want, data) // a permutation: every slot kept as it was
				})
			}
		}
	}
}
