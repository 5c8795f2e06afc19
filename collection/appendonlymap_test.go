package collection

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"
)

// nullableString is a Go stand-in for a Java String that may be null: the zero value is "null".
type nullableString struct {
	s     string
	valid bool
}

func str(s string) nullableString { return nullableString{s: s, valid: true} }

var null nullableString

// AOM-01, AppendOnlyMapSuite "initialization".
func TestAppendOnlyMap_AOM01_Initialization(t *testing.T) {
	for _, c := range []int{1, 255, 256} {
		m := NewAppendOnlyMap[string, string](c)
		require.Equal(t, 0, m.Len(), "capacity %d", c)
		require.Equal(t, nextPowerOfTwo(c), m.Capacity())
	}
	for _, c := range []int{1 << 30, -1, 0} {
		require.PanicsWithValue(t, func() string {
			if c > MaxMapCapacity {
				return fmt.Sprintf("collection: can't make capacity bigger than %d elements (asked for %d)", MaxMapCapacity, c)
			}
			return fmt.Sprintf("collection: invalid initial capacity %d (must be 1 to %d)", c, MaxMapCapacity)
		}(), func() { NewAppendOnlyMap[string, string](c) }, "capacity %d", c)
	}
	// The largest capacity is allowed (not allocated here: only the bound is checked).
	require.Equal(t, 1<<29, nextPowerOfTwo(MaxMapCapacity))
}

// AOM-02, AppendOnlyMapSuite "object keys and values" and "primitive keys and values".
func TestAppendOnlyMap_AOM02_KeysAndValues(t *testing.T) {
	t.Run("object", func(t *testing.T) {
		m := NewAppendOnlyMap[nullableString, string](DefaultInitialCapacity)
		want := map[nullableString]string{}
		for i := 1; i <= 100; i++ {
			k := strconv.Itoa(i)
			require.NoError(t, m.Update(str(k), k))
			want[str(k)] = k
		}
		require.Equal(t, 100, m.Len())
		for i := 1; i <= 100; i++ {
			v, ok := m.Get(str(strconv.Itoa(i)))
			require.True(t, ok)
			require.Equal(t, strconv.Itoa(i), v)
		}
		for _, k := range []nullableString{str("0"), str("101"), null} {
			_, ok := m.Get(k)
			require.False(t, ok, "%v", k)
		}
		got := map[nullableString]string{}
		for k, v := range m.All() {
			_, dup := got[k]
			require.False(t, dup)
			got[k] = v
		}
		require.Equal(t, want, got)
	})
	t.Run("primitive", func(t *testing.T) {
		m := NewAppendOnlyMap[int, int](DefaultInitialCapacity)
		for i := 1; i <= 100; i++ {
			require.NoError(t, m.Update(i, i))
		}
		require.Equal(t, 100, m.Len())
		for i := 1; i <= 100; i++ {
			v, ok := m.Get(i)
			require.True(t, ok)
			require.Equal(t, i, v)
		}
		for _, k := range []int{0, 101} {
			_, ok := m.Get(k)
			require.False(t, ok)
		}
		got := map[int]int{}
		for k, v := range m.All() {
			got[k] = v
		}
		require.Len(t, got, 100)
		for k, v := range got {
			require.Equal(t, k, v)
		}
	})
}

// AOM-03, AppendOnlyMapSuite "null keys" and "null values". Go has no null key; the nullable
// key type's zero value plays it and is stored in the table like any key.
func TestAppendOnlyMap_AOM03_NullKeysAndValues(t *testing.T) {
	t.Run("null keys", func(t *testing.T) {
		m := NewAppendOnlyMap[nullableString, string](DefaultInitialCapacity)
		for i := 1; i <= 100; i++ {
			require.NoError(t, m.Update(str(strconv.Itoa(i)), strconv.Itoa(i)))
		}
		_, ok := m.Get(null)
		require.False(t, ok)
		require.NoError(t, m.Update(null, "hello"))
		require.Equal(t, 101, m.Len())
		v, ok := m.Get(null)
		require.True(t, ok)
		require.Equal(t, "hello", v)
	})
	t.Run("null values", func(t *testing.T) {
		m := NewAppendOnlyMap[nullableString, *string](DefaultInitialCapacity)
		for i := 1; i <= 100; i++ {
			require.NoError(t, m.Update(str(strconv.Itoa(i)), nil))
		}
		require.Equal(t, 100, m.Len())
		v, ok := m.Get(str("1"))
		require.True(t, ok, "a nil value is present, unlike Spark's apply")
		require.Nil(t, v)
		_, ok = m.Get(null)
		require.False(t, ok)
		require.Equal(t, 100, m.Len(), "lookup does not insert")
		require.NoError(t, m.Update(null, nil))
		require.Equal(t, 101, m.Len())
		v, ok = m.Get(null)
		require.True(t, ok)
		require.Nil(t, v)
	})
	t.Run("nil pointer key", func(t *testing.T) {
		m := NewAppendOnlyMap[*int, string](DefaultInitialCapacity)
		keys := make([]*int, 50)
		for i := range keys {
			keys[i] = new(int)
			require.NoError(t, m.Update(keys[i], strconv.Itoa(i)))
		}
		require.NoError(t, m.Update(nil, "nil"))
		require.Equal(t, 51, m.Len())
		v, ok := m.Get(nil)
		require.True(t, ok)
		require.Equal(t, "nil", v)
		_, ok = m.Get(new(int))
		require.False(t, ok, "pointer keys compare by identity")
	})
}

// AOM-04, AppendOnlyMapSuite "changeValue".
func TestAppendOnlyMap_AOM04_ChangeValue(t *testing.T) {
	m := NewAppendOnlyMap[nullableString, string](DefaultInitialCapacity)
	for i := 1; i <= 100; i++ {
		require.NoError(t, m.Update(str(strconv.Itoa(i)), strconv.Itoa(i)))
	}
	for i := 1; i <= 100; i++ {
		k := strconv.Itoa(i)
		got, err := m.ChangeValue(str(k), func(had bool, old string) string {
			require.True(t, had)
			require.Equal(t, k, old)
			return old + "!"
		})
		require.NoError(t, err)
		require.Equal(t, k+"!", got)
	}
	// Inserts, some of which grow the table: the returned value must be the new one.
	for i := 101; i <= 400; i++ {
		k := strconv.Itoa(i)
		got, err := m.ChangeValue(str(k), func(had bool, old string) string {
			require.False(t, had)
			return k + "!"
		})
		require.NoError(t, err)
		require.Equal(t, k+"!", got)
	}
	require.Equal(t, 400, m.Len())
	_, ok := m.Get(null)
	require.False(t, ok)
	got, err := m.ChangeValue(null, func(had bool, old string) string {
		require.False(t, had)
		return "null!"
	})
	require.NoError(t, err)
	require.Equal(t, "null!", got)
	require.Equal(t, 401, m.Len())
	got, err = m.ChangeValue(null, func(had bool, old string) string {
		require.True(t, had)
		require.Equal(t, "null!", old)
		return old + "!"
	})
	require.NoError(t, err)
	require.Equal(t, "null!!", got)
	require.Equal(t, 401, m.Len())
	for i := 1; i <= 400; i++ {
		v, ok := m.Get(str(strconv.Itoa(i)))
		require.True(t, ok)
		require.Equal(t, strconv.Itoa(i)+"!", v)
	}
}

// compareNullableInts orders keys as integers with null first (Spark's test comparator maps null
// to Int.MinValue).
func compareNullableInts(a, b nullableString) int {
	ai, bi := int64(-1<<62), int64(-1<<62)
	if a.valid {
		ai, _ = strconv.ParseInt(a.s, 10, 64)
	}
	if b.valid {
		bi, _ = strconv.ParseInt(b.s, 10, 64)
	}
	return cmp.Compare(ai, bi)
}

// AOM-06, AppendOnlyMapSuite "destructive sort".
func TestAppendOnlyMap_AOM06_DestructiveSort(t *testing.T) {
	m := NewAppendOnlyMap[nullableString, string](DefaultInitialCapacity)
	for i := 1; i <= 100; i++ {
		require.NoError(t, m.Update(str(strconv.Itoa(i)), strconv.Itoa(i)))
	}
	require.NoError(t, m.Update(null, "happy new year!"))

	// Everything works before the destructive sort.
	v, ok := m.Get(str("1"))
	require.True(t, ok)
	require.Equal(t, "1", v)
	require.NoError(t, m.Update(str("1"), "2013"))
	_, err := m.ChangeValue(str("1"), func(bool, string) string { return "2014" })
	require.NoError(t, err)
	n := 0
	for range m.All() {
		n++
	}
	require.Equal(t, 101, n)

	it := m.DestructiveSortedIterator(compareNullableInts)
	pairs, err := Collect(it)
	require.NoError(t, err)
	require.Len(t, pairs, 101)
	require.Equal(t, Pair[nullableString, string]{Key: null, Value: "happy new year!"}, pairs[0])
	require.Equal(t, Pair[nullableString, string]{Key: str("1"), Value: "2014"}, pairs[1])
	for i := 2; i < len(pairs); i++ {
		require.Negative(t, compareNullableInts(pairs[i-1].Key, pairs[i].Key), "keys strictly increase")
		require.Equal(t, pairs[i].Key.s, pairs[i].Value)
	}

	// Every later operation fails.
	for name, op := range map[string]func(){
		"Get":    func() { m.Get(str("1")) },
		"Update": func() { _ = m.Update(str("1"), "2015") },
		"ChangeValue": func() {
			_, _ = m.ChangeValue(str("1"), func(bool, string) string { return "2015" })
		},
		"All":                       func() { m.All() },
		"DestructiveIterator":       func() { m.DestructiveIterator() },
		"DestructiveSortedIterator": func() { m.DestructiveSortedIterator(compareNullableInts) },
		"DestructiveSortedByHash":   func() { m.DestructiveSortedByHash() },
	} {
		require.PanicsWithValue(t, destroyedMsg, op, name)
	}
	require.Equal(t, 0, m.Capacity(), "the map no longer references its table")
}

// Growth regression: ChangeValue and Update return the new value / store it when the insert is
// the one that doubles the table, at every doubling from 1 slot up.
func TestAppendOnlyMap_GrowthAtThreshold(t *testing.T) {
	m := NewAppendOnlyMap[int64, int64](1)
	require.Equal(t, 1, m.Capacity())
	for i := int64(0); i < 5000; i++ {
		before := m.Capacity()
		atThreshold := m.AtGrowThreshold()
		got, err := m.ChangeValue(i, func(had bool, old int64) int64 {
			require.False(t, had)
			return i * 10
		})
		require.NoError(t, err)
		require.Equal(t, i*10, got)
		if atThreshold {
			require.Equal(t, 2*before, m.Capacity(), "insert at the threshold doubles the table")
		} else {
			require.Equal(t, before, m.Capacity())
		}
		require.LessOrEqual(t, m.Len(), int(loadFactor*float64(m.Capacity())))
	}
	for i := int64(0); i < 5000; i++ {
		v, ok := m.Get(i)
		require.True(t, ok)
		require.Equal(t, i*10, v)
	}
	require.Equal(t, 8192, m.Capacity())
}

// The maximum capacity is enforced with an error and nothing changes (Spark throws "Can't
// contain more than <growThreshold> elements"). The limit is lowered to keep the test small.
func TestAppendOnlyMap_MaxCapacity(t *testing.T) {
	m := NewAppendOnlyMap[int, int](8)
	m.maxCapacity = 16
	limit := 11 // int(0.7 × 16) keys fit in 16 slots
	for i := range limit {
		require.NoError(t, m.Update(i, i))
	}
	require.Equal(t, 16, m.Capacity())
	err := m.Update(limit, 0)
	require.ErrorIs(t, err, ErrMapFull)
	require.ErrorContains(t, err, "can't contain more than 11 elements (capacity 16, maximum capacity 16)")
	called := false
	_, err = m.ChangeValue(limit, func(bool, int) int { called = true; return 0 })
	require.ErrorIs(t, err, ErrMapFull)
	require.False(t, called, "f is not called when the key cannot be inserted")
	require.Equal(t, limit, m.Len())
	_, ok := m.Get(limit)
	require.False(t, ok)
	// Existing keys can still change.
	require.NoError(t, m.Update(3, 33))
	got, err := m.ChangeValue(4, func(had bool, old int) int { return old + 40 })
	require.NoError(t, err)
	require.Equal(t, 44, got)
}

// Forced collisions: every key in one probe chain (constant hash), and few distinct hashes.
func TestAppendOnlyMap_ForcedCollisions(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(string) uint64
	}{
		{"constant 0", func(string) uint64 { return 0 }},
		{"constant max", func(string) uint64 { return ^uint64(0) }},
		{"three values", func(s string) uint64 { return uint64(len(s) % 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewAppendOnlyMapWithHasher[string, int](4, HasherFunc(tc.fn))
			for i := range 300 {
				_, err := m.ChangeValue(strconv.Itoa(i), func(had bool, old int) int { return old + i })
				require.NoError(t, err)
				_, err = m.ChangeValue(strconv.Itoa(i/2), func(had bool, old int) int { return old + 1 })
				require.NoError(t, err)
			}
			require.Equal(t, 300, m.Len())
			for i := range 300 {
				v, ok := m.Get(strconv.Itoa(i))
				require.True(t, ok)
				want := i // inserted with old+i, then +1 from steps 2i and 2i+1
				if i < 150 {
					want += 2
				}
				require.Equal(t, want, v, "key %d", i)
			}
			pairs, err := Collect(m.DestructiveSortedByHash())
			require.NoError(t, err)
			require.Len(t, pairs, 300)
			h := HasherFunc(tc.fn)
			require.True(t, slices.IsSortedFunc(pairs, func(a, b Pair[string, int]) int {
				return cmp.Compare(h.Hash(a.Key), h.Hash(b.Key))
			}))
		})
	}
}

func TestAppendOnlyMap_DestructiveSortedByHash(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	m := NewAppendOnlyMap[string, int](DefaultInitialCapacity)
	want := map[string]int{}
	for range 2000 {
		k := strconv.Itoa(rng.IntN(1500))
		want[k]++
		_, err := m.ChangeValue(k, func(_ bool, old int) int { return old + 1 })
		require.NoError(t, err)
	}
	h := m.Hasher()
	require.Equal(t, h.Hash("17"), m.HashOf("17"))
	it := m.DestructiveSortedByHash()
	got := map[string]int{}
	prev := uint64(0)
	for p, err := range All(it) {
		require.NoError(t, err)
		hk := h.Hash(p.Key)
		require.GreaterOrEqual(t, hk, prev)
		prev = hk
		got[p.Key] = p.Value
	}
	require.Equal(t, want, got)
}

// The destructive iterators hand the table over and release each entry once it is read, so a
// value read and dropped becomes collectable while the rest is still being read (SPARK-22713).
func TestAppendOnlyMap_DestructiveIteratorReleasesEntries(t *testing.T) {
	type big struct{ payload [1 << 10]byte }
	for _, sorted := range []bool{false, true} {
		t.Run(fmt.Sprintf("sorted=%v", sorted), func(t *testing.T) {
			m := NewAppendOnlyMap[int, *big](DefaultInitialCapacity)
			weaks := map[int]weak.Pointer[big]{}
			for i := range 100 {
				b := &big{}
				weaks[i] = weak.Make(b)
				require.NoError(t, m.Update(i, b))
			}
			var it Iterator[Pair[int, *big]]
			if sorted {
				it = m.DestructiveSortedIterator(cmp.Compare[int])
			} else {
				it = m.DestructiveIterator()
			}
			var read []int
			for range 50 {
				require.True(t, it.Next())
				read = append(read, it.Value().Key)
			}
			require.True(t, it.Next()) // moves past the 50th
			unread := it.Value().Key
			var readWeaks []weak.Pointer[big]
			for _, k := range read {
				readWeaks = append(readWeaks, weaks[k])
			}
			require.True(t, collected(readWeaks...), "values of read keys %v still reachable", read)
			require.NotNil(t, weaks[unread].Value())
			require.NoError(t, it.Close())
			require.True(t, collected(slices.Collect(maps.Values(weaks))...), "values reachable after Close")
		})
	}
}

func TestAppendOnlyMap_AllDetectsGrowth(t *testing.T) {
	m := NewAppendOnlyMap[int, int](4)
	require.NoError(t, m.Update(1, 1))
	require.PanicsWithValue(t, "collection: append-only map grew during iteration", func() {
		for k := range m.All() {
			for j := range 10 {
				require.NoError(t, m.Update(k+100+j, 0))
			}
		}
	})
	// Changing values of existing keys during the loop is fine.
	m2 := NewAppendOnlyMap[int, int](16)
	for i := range 10 {
		require.NoError(t, m2.Update(i, i))
	}
	for k, v := range m2.All() {
		require.NoError(t, m2.Update(k, v*2))
	}
	for i := range 10 {
		v, _ := m2.Get(i)
		require.Equal(t, 2*i, v)
	}
}

func TestHasher(t *testing.T) {
	type named int32
	type point struct{ x, y int }
	checkHasher(t, NewHasher[int64](), []int64{0, 1, -1, 1 << 40})
	checkHasher(t, NewHasher[uint8](), []uint8{0, 1, 255})
	checkHasher(t, NewHasher[int16](), []int16{0, 1, -1})
	checkHasher(t, NewHasher[named](), []named{0, 1, -1})
	checkHasher(t, NewHasher[string](), []string{"", "a", "abc"})
	checkHasher(t, NewHasher[point](), []point{{0, 0}, {1, 2}, {2, 1}})
	checkHasher(t, NewHasher[float64](), []float64{0, 1.5, -2})

	// Never 0, even from a function returning 0.
	h := HasherFunc(func(int) uint64 { return 0 })
	require.Equal(t, uint64(1), h.Hash(5))
	var zero Hasher[int]
	require.True(t, zero.IsZero())
	require.Panics(t, func() { zero.Hash(1) })
	require.Panics(t, func() { HasherFunc[int](nil) })
	// Seeds differ between Hashers; copies agree.
	a, b := NewHasher[string](), NewHasher[string]()
	c := a
	require.Equal(t, a.Hash("x"), c.Hash("x"))
	require.NotEqual(t, a.Hash("x"), b.Hash("x"))
}

func checkHasher[K comparable](t *testing.T, h Hasher[K], keys []K) {
	t.Helper()
	seen := map[uint64]K{}
	for _, k := range keys {
		x := h.Hash(k)
		require.NotZero(t, x)
		require.Equal(t, x, h.Hash(k), "deterministic")
		if prev, dup := seen[x]; dup {
			t.Fatalf("%v and %v share hash %x", prev, k, x)
		}
		seen[x] = k
	}
}

// sortByHash (DestructiveSortedByHash's radix sort) orders any hash distribution like a
// comparison sort: uniform, a handful of values, all equal, differing only in low or high
// bytes, and the sizes around the insertion-sort cutoff.
func TestSortByHash(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	dists := map[string]func() uint64{
		"uniform":   rng.Uint64,
		"few":       func() uint64 { return uint64(1 + rng.IntN(5)) },
		"equal":     func() uint64 { return 42 },
		"low byte":  func() uint64 { return 0xabcdef00_00000000 | uint64(rng.IntN(256)) },
		"high byte": func() uint64 { return uint64(rng.IntN(256))<<56 | 1 },
		"mixed": func() uint64 {
			if rng.IntN(2) == 0 {
				return 7
			}
			return rng.Uint64()
		},
	}
	for name, next := range dists {
		for _, n := range []int{0, 1, 2, 31, 32, 33, 257, 5000} {
			data := make([]slot[int, int], n)
			for i := range data {
				data[i] = slot[int, int]{hash: next(), key: i, val: -i}
			}
			want := slices.Clone(data)
			slices.SortStableFunc(want, func(a, b slot[int, int]) int { return cmp.Compare(a.hash, b.hash) })
			sortByHash(data, 56)
			require.True(t, slices.IsSortedFunc(data, func(a, b slot[int, int]) int { return cmp.Compare(a.hash, b.hash) }), "%s, %d slots", name, n)
			slices.SortStableFunc(data, func(a, b slot[int, int]) int { return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.key, b.key)) })
			require.Equal(t, want, data, "%s, %d slots: not a permutation", name, n)
			for _, s := range data {
				require.Equal(t, -s.key, s.val, "%s: a key lost its value", name)
			}
		}
	}
}
