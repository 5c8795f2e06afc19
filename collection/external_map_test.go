package collection

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

// newTestScope returns a disk scope under a test directory over fs (nil: the OS), and checks at
// cleanup that no file is left.
func newTestScope(t testing.TB, fs storage.FS) *storage.Scope {
	t.Helper()
	dbm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}, FS: fs})
	require.NoError(t, err)
	scope := dbm.NewScope()
	t.Cleanup(func() {
		require.Zero(t, dbm.Files(), "spill files left behind")
		require.NoError(t, scope.Close())
		require.NoError(t, dbm.Close())
	})
	return scope
}

// listAgg is the suites' combiner: createCombiner(v) = [v], mergeValue = append, mergeCombiners
// = concat.
func listAgg[K, V any]() Aggregator[K, V, []V] {
	return Aggregator[K, V, []V]{
		CreateCombiner: func(v V) []V { return []V{v} },
		MergeValue:     func(c []V, v V) []V { return append(c, v) },
		MergeCombiners: func(a, b []V) []V { return append(a, b...) },
	}
}

func sumAgg[K any]() Aggregator[K, int64, int64] {
	return Aggregator[K, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
}

func maxAgg[K any]() Aggregator[K, int, int] {
	return Aggregator[K, int, int]{
		CreateCombiner: func(v int) int { return v },
		MergeValue:     func(c, v int) int { return max(c, v) },
		MergeCombiners: func(a, b int) int { return max(a, b) },
	}
}

var (
	intCodec    = storage.VarintCodec[int]{}
	int64Codec  = storage.VarintCodec[int64]{}
	intsCodec   = storage.SliceCodec[int]{Elem: intCodec}
	stringCodec = storage.StringCodec{}
)

// drain reads it to the end into a Go map, failing on a repeated key or an error, and closes it.
func drain[K comparable, C any](t testing.TB, it Iterator[Pair[K, C]]) map[K]C {
	t.Helper()
	out := map[K]C{}
	for it.Next() {
		p := it.Value()
		_, dup := out[p.Key]
		require.False(t, dup, "key %v returned twice", p.Key)
		out[p.Key] = p.Value
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return out
}

func sorted[T ~[]E, E interface{ ~int | ~string }](s T) T {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func sortedValues[K comparable, E interface{ ~int | ~string }](m map[K][]E) map[K][]E {
	out := make(map[K][]E, len(m))
	for k, v := range m {
		out[k] = sorted(v)
	}
	return out
}

func newIntListMap(t testing.TB, cfg ExternalMapConfig[int]) *ExternalAppendOnlyMap[int, int, []int] {
	t.Helper()
	m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), listAgg[int, int](), intCodec, intsCodec, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

// TestSP01SpillMethodInExternalAppendOnlyMap is SP-01 (SpillableSuite "spill method in
// ExternalAppendOnlyMap").
func TestSP01SpillMethodInExternalAppendOnlyMap(t *testing.T) {
	for _, size := range []int{10000, 10001, 0} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			m := newIntListMap(t, ExternalMapConfig[int]{})
			for i := range size {
				require.NoError(t, m.current.Update(i, []int{i}))
			}
			m.sp.Lock()
			disk, err := m.spillCurrent()
			m.sp.Unlock()
			require.NoError(t, err)
			require.Len(t, m.spills, 1)
			f := m.spills[0]
			require.True(t, f.id.IsTemp())
			require.Equal(t, storage.KindTempLocal, f.id.Kind())
			require.True(t, m.scope.Manager().Contains(f.id), "spill file exists")
			file, err := m.scope.Manager().Open(f.id)
			require.NoError(t, err)
			st, err := file.Stat()
			require.NoError(t, err)
			require.NoError(t, file.Close())
			require.Equal(t, int64(size), f.records, "records written")
			require.Equal(t, st.Size(), f.size, "bytes written == file length")
			require.Equal(t, disk, f.size)
			require.NoError(t, m.Close())
			require.False(t, m.scope.Manager().Contains(f.id), "Close deletes the spill file")
		})
	}
}

// TestEAOM01Insert is EAOM-01 ("single insert" / "multiple insert", and the destructive
// iterator's errors).
func TestEAOM01Insert(t *testing.T) {
	ctx := context.Background()
	t.Run("single insert", func(t *testing.T) {
		m := newIntListMap(t, ExternalMapConfig[int]{})
		require.NoError(t, m.Insert(ctx, 1, 10))
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		require.Equal(t, map[int][]int{1: {10}}, drain(t, it))
	})
	t.Run("multiple insert", func(t *testing.T) {
		m := newIntListMap(t, ExternalMapConfig[int]{})
		require.NoError(t, m.InsertAll(ctx, SliceIterator([]Pair[int, int]{{Key: 1, Value: 10}, {Key: 2, Value: 20}, {Key: 3, Value: 30}})))
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		require.Equal(t, map[int][]int{1: {10}, 2: {20}, 3: {30}}, drain(t, it))
		_, err = m.Iterator(ctx)
		require.ErrorIs(t, err, ErrIterated)
		require.ErrorContains(t, err, "destructive and should only be called once")
		require.ErrorIs(t, m.Insert(ctx, 4, 40), ErrIterated)
		require.NoError(t, m.Close())
		require.ErrorIs(t, m.Insert(ctx, 4, 40), ErrClosed)
	})
}

// TestEAOM02InsertWithCollision is EAOM-02 ("insert with collision").
func TestEAOM02InsertWithCollision(t *testing.T) {
	m := newIntListMap(t, ExternalMapConfig[int]{})
	in := []Pair[int, int]{{Key: 1, Value: 10}, {Key: 2, Value: 20}, {Key: 3, Value: 30}, {Key: 1, Value: 100}, {Key: 2, Value: 200}, {Key: 1, Value: 1000}}
	require.NoError(t, m.InsertAll(context.Background(), SliceIterator(in)))
	it, err := m.Iterator(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[int][]int{1: {10, 100, 1000}, 2: {20, 200}, 3: {30}}, sortedValues(drain(t, it)))
}

// TestEAOM03Ordering is EAOM-03 ("ordering"): maps with the same keys inserted in different
// orders iterate identically.
func TestEAOM03Ordering(t *testing.T) {
	h := HasherFunc(func(k int) uint64 { return uint64(k) })
	orders := [][]int{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}
	its := make([]Iterator[Pair[int, []int]], len(orders))
	for i, order := range orders {
		m := newIntListMap(t, ExternalMapConfig[int]{Hasher: h})
		for _, k := range order {
			require.NoError(t, m.Insert(context.Background(), k, 10*k))
		}
		var err error
		its[i], err = m.Iterator(context.Background())
		require.NoError(t, err)
	}
	for range 3 {
		for _, it := range its {
			require.True(t, it.Next())
		}
		require.Equal(t, its[0].Value(), its[1].Value())
		require.Equal(t, its[0].Value(), its[2].Value())
	}
	for _, it := range its {
		require.False(t, it.Next())
		require.NoError(t, it.Err())
	}
}

// optInt is a nullable int (Spark's null Integer): the key and value type of the null tests.
type optInt struct {
	Valid bool
	V     int
}

func some(v int) optInt { return optInt{Valid: true, V: v} }

var nullInt optInt

var optIntCodec = storage.FuncCodec[optInt]{
	AppendFunc: func(dst []byte, v optInt) []byte {
		if !v.Valid {
			return append(dst, 0)
		}
		return intCodec.Append(append(dst, 1), v.V)
	},
	DecodeFunc: func(src []byte) (optInt, int, error) {
		if len(src) == 0 || src[0] > 1 {
			return optInt{}, 0, fmt.Errorf("bad optInt: %w", storage.ErrCorrupt)
		}
		if src[0] == 0 {
			return optInt{}, 1, nil
		}
		v, n, err := intCodec.Decode(src[1:])
		return optInt{Valid: true, V: v}, n + 1, err
	},
}

func newOptMap(t testing.TB, cfg ExternalMapConfig[optInt]) *ExternalAppendOnlyMap[optInt, optInt, []optInt] {
	t.Helper()
	m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), listAgg[optInt, optInt](),
		optIntCodec, storage.SliceCodec[optInt]{Elem: optIntCodec}, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

func optLess(a, b optInt) int {
	switch {
	case a.Valid != b.Valid:
		if a.Valid {
			return 1
		}
		return -1
	default:
		return a.V - b.V
	}
}

// TestEAOM04NullKeysAndValues is EAOM-04 ("null keys and values") with a real nullable key type.
func TestEAOM04NullKeysAndValues(t *testing.T) {
	m := newOptMap(t, ExternalMapConfig[optInt]{})
	in := []Pair[optInt, optInt]{{Key: some(1), Value: some(5)}, {Key: some(2), Value: some(6)}, {Key: some(3), Value: some(7)}, {Key: some(4), Value: nullInt}, {Key: nullInt, Value: some(8)}, {Key: nullInt, Value: nullInt}}
	require.NoError(t, m.InsertAll(context.Background(), SliceIterator(in)))
	it, err := m.Iterator(context.Background())
	require.NoError(t, err)
	got := drain(t, it)
	for k, v := range got {
		slices.SortFunc(v, optLess)
		got[k] = v
	}
	require.Equal(t, map[optInt][]optInt{
		some(1): {some(5)}, some(2): {some(6)}, some(3): {some(7)}, some(4): {nullInt}, nullInt: {nullInt, some(8)},
	}, got)
}

// TestEAOM05Spilling is EAOM-05 ("spilling", "spilling with compression"; adapted to the direct
// API with a force-spill threshold of 250 and spill batches of 10). Spark's encryption variant
// has no counterpart: spill files are not encrypted.
func TestEAOM05Spilling(t *testing.T) {
	ctx := context.Background()
	for _, comp := range []storage.Compression{storage.CompressionNone, storage.CompressionS2, storage.CompressionZstd} {
		cfg := SpillConfig{ForceSpillElements: 250, BatchSize: 10, Compression: comp}
		t.Run(comp.String()+"/max", func(t *testing.T) {
			m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), maxAgg[int](), intCodec, intCodec,
				ExternalMapConfig[int]{SpillConfig: cfg})
			require.NoError(t, err)
			defer func() { require.NoError(t, m.Close()) }()
			for i := range 1000 {
				require.NoError(t, m.Insert(ctx, i/2, i))
			}
			require.Equal(t, 3, m.NumSpills(), "a spill before the 252nd, 503rd and 754th insert")
			it, err := m.Iterator(ctx)
			require.NoError(t, err)
			got := drain(t, it)
			require.Len(t, got, 500)
			for k, v := range got {
				require.Equal(t, 2*k+1, v)
			}
		})
		t.Run(comp.String()+"/list", func(t *testing.T) {
			m := newIntListMap(t, ExternalMapConfig[int]{SpillConfig: cfg})
			for i := range 1000 {
				require.NoError(t, m.Insert(ctx, i/4, i))
			}
			require.Positive(t, m.NumSpills(), "map did not spill")
			it, err := m.Iterator(ctx)
			require.NoError(t, err)
			got := sortedValues(drain(t, it))
			require.Len(t, got, 250)
			for k, v := range got {
				require.Equal(t, []int{4 * k, 4*k + 1, 4*k + 2, 4*k + 3}, v)
			}
		})
		t.Run(comp.String()+"/cogroup", func(t *testing.T) {
			// Tagged values: tag 0 is the left input, 1 the right.
			m := newIntListMap(t, ExternalMapConfig[int]{SpillConfig: cfg})
			for i := range 1000 {
				require.NoError(t, m.Insert(ctx, i, 2*i))
				require.NoError(t, m.Insert(ctx, i%100, 2*i+1))
			}
			require.Positive(t, m.NumSpills(), "map did not spill")
			it, err := m.Iterator(ctx)
			require.NoError(t, err)
			got := drain(t, it)
			require.Len(t, got, 1000)
			for k, vs := range got {
				var left, right []int
				for _, v := range vs {
					if v%2 == 0 {
						left = append(left, v/2)
					} else {
						right = append(right, v/2)
					}
				}
				require.Equal(t, []int{k}, left)
				var want []int
				if k < 100 {
					for j := k; j < 1000; j += 100 {
						want = append(want, j)
					}
				}
				require.Equal(t, want, sorted(right), "key %d", k)
			}
		})
	}
}

// javaStringHash is Java's String.hashCode: s[0]·31^(n−1) + … + s[n−1] over UTF-16 code units,
// in 32-bit arithmetic (ASCII keys here, so bytes are code units).
func javaStringHash(s string) int32 {
	var h int32
	for i := 0; i < len(s); i++ {
		h = 31*h + int32(s[i])
	}
	return h
}

// TestEAOM06SpillingWithHashCollisions is EAOM-06 ("spilling with hash collisions"): Java's
// String.hashCode as the map's hash, so the listed pairs collide.
func TestEAOM06SpillingWithHashCollisions(t *testing.T) {
	pairs := []struct {
		a, b string
		hash int32
	}{
		{"Aa", "BB", 2112}, {"to", "v1", 3707}, {"variants", "gelato", -1249574770},
		{"Teheran", "Siblings", 231609873}, {"misused", "horsemints", 1069518484},
		{"isohel", "epistolaries", -1179291542}, {"righto", "buzzards", -931102253},
		{"hierarch", "crinolines", -1732884796}, {"inwork", "hypercatalexes", -1183663690},
		{"wainages", "presentencing", 240183619}, {"trichothecenes", "locular", 339006536},
		{"pomatoes", "eructation", 568647356},
	}
	partner := map[string]string{}
	for _, p := range pairs {
		require.Equal(t, p.hash, javaStringHash(p.a), p.a)
		require.Equal(t, p.hash, javaStringHash(p.b), p.b)
		partner[p.a], partner[p.b] = p.b, p.a
	}
	h := HasherFunc(func(s string) uint64 { return uint64(uint32(javaStringHash(s))) })
	m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), listAgg[string, string](),
		stringCodec, storage.SliceCodec[string]{Elem: stringCodec},
		ExternalMapConfig[string]{SpillConfig: SpillConfig{ForceSpillElements: 500, BatchSize: 10}, Hasher: h})
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	ctx := context.Background()
	for i := 1; i <= 1000; i++ {
		require.NoError(t, m.Insert(ctx, strconv.Itoa(i), strconv.Itoa(i)))
	}
	for _, p := range pairs {
		require.NoError(t, m.Insert(ctx, p.a, p.b))
		require.NoError(t, m.Insert(ctx, p.b, p.a))
	}
	require.Positive(t, m.NumSpills(), "map did not spill")
	it, err := m.Iterator(ctx)
	require.NoError(t, err)
	got := drain(t, it)
	require.Len(t, got, 1000+24)
	for k, v := range got {
		want := k
		if p, ok := partner[k]; ok {
			want = p
		}
		require.Equal(t, []string{want}, v, "key %q", k)
	}
}

// TestEAOM09SpillingWithNullKeysAndValues is EAOM-09 ("spilling with null keys and values"),
// with a nullable key type.
func TestEAOM09SpillingWithNullKeysAndValues(t *testing.T) {
	m := newOptMap(t, ExternalMapConfig[optInt]{SpillConfig: SpillConfig{ForceSpillElements: 250, BatchSize: 10}})
	ctx := context.Background()
	const n = 1000
	for i := 1; i <= n; i++ {
		require.NoError(t, m.Insert(ctx, some(i), some(i)))
	}
	require.NoError(t, m.Insert(ctx, nullInt, some(1)))
	require.NoError(t, m.Insert(ctx, some(1), nullInt))
	require.NoError(t, m.Insert(ctx, nullInt, nullInt))
	require.Positive(t, m.NumSpills(), "map did not spill")
	it, err := m.Iterator(ctx)
	require.NoError(t, err)
	got := drain(t, it)
	require.Len(t, got, n+1)
	slices.SortFunc(got[nullInt], optLess)
	require.Equal(t, []optInt{nullInt, some(1)}, got[nullInt])
	slices.SortFunc(got[some(1)], optLess)
	require.Equal(t, []optInt{nullInt, some(1)}, got[some(1)])
	require.Equal(t, []optInt{some(n)}, got[some(n)])
}

// TestEAOM12PeakMemory is EAOM-12 ("SPARK-22713 external aggregation updates peak execution
// memory"): force-spill threshold 1000, sums of (i, i).
func TestEAOM12PeakMemory(t *testing.T) {
	for _, tc := range []struct {
		n, spills int
	}{{500, 0}, {3000, 2}} {
		t.Run(strconv.Itoa(tc.n), func(t *testing.T) {
			m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), sumAgg[int64](), int64Codec, int64Codec,
				ExternalMapConfig[int64]{SpillConfig: SpillConfig{ForceSpillElements: 1000}})
			require.NoError(t, err)
			defer func() { require.NoError(t, m.Close()) }()
			for i := 1; i <= tc.n; i++ {
				require.NoError(t, m.Insert(context.Background(), int64(i), int64(i)))
			}
			require.Equal(t, tc.spills, m.NumSpills())
			require.Positive(t, m.Metrics().PeakMemoryUsedBytes)
			it, err := m.Iterator(context.Background())
			require.NoError(t, err)
			require.Len(t, drain(t, it), tc.n)
		})
	}
}

// TestEAOM14SpillFileFormat is EAOM-14 (spill file format, after Spark's spillMemoryIteratorToDisk
// and DiskMapIterator in ExternalAppendOnlyMap.scala): batch size
// 10 and 25 records give batches of 10, 10 and 5 records whose sizes add up to the file length;
// reading returns the pairs in hash order, each with its key's hash, and deletes the file at the
// end.
func TestEAOM14SpillFileFormat(t *testing.T) {
	m := newIntListMap(t, ExternalMapConfig[int]{SpillConfig: SpillConfig{BatchSize: 10}})
	for i := range 25 {
		require.NoError(t, m.current.Update(i, []int{i}))
	}
	m.sp.Lock()
	_, err := m.spillCurrent()
	m.sp.Unlock()
	require.NoError(t, err)
	f := m.spills[0]
	var counts []int
	var total int64
	file, err := m.scope.Manager().Open(f.id)
	require.NoError(t, err)
	defer file.Close()
	for b, err := range storage.ScanBatches(file, f.size) {
		require.NoError(t, err)
		i := len(counts)
		counts = append(counts, b.Records)
		require.Equal(t, total, b.Offset, "batch %d offset", i)
		total += b.Size
	}
	require.Equal(t, []int{10, 10, 5}, counts)
	require.Equal(t, f.size, total)

	r, err := m.openSpill(f)
	require.NoError(t, err)
	var last uint64
	n := 0
	for r.Next() {
		s := r.Value()
		h := m.hasher.Hash(s.key)
		require.Equal(t, h, s.hash, "the record's stored hash")
		require.GreaterOrEqual(t, h, last, "hash order")
		last = h
		require.Equal(t, []int{s.key}, s.val)
		n++
	}
	require.NoError(t, r.Err())
	require.Equal(t, 25, n)
	require.False(t, m.scope.Manager().Contains(f.id), "the file is deleted at EOF")
	require.NoError(t, r.Close())
	m.spills = nil
}

// TestExternalMapArgs checks that bad arguments are reported as errors.
func TestExternalMapArgs(t *testing.T) {
	tm := newTestTask(t, 1<<20)
	scope := newTestScope(t, nil)
	_, err := NewExternalAppendOnlyMap(tm, scope, Aggregator[int, int, int]{}, intCodec, intCodec, ExternalMapConfig[int]{})
	require.ErrorContains(t, err, "CreateCombiner is nil")
	_, err = NewExternalAppendOnlyMap(nil, nil, maxAgg[int](), nil, intCodec, ExternalMapConfig[int]{SpillConfig: SpillConfig{BatchSize: -1}})
	require.ErrorContains(t, err, "no TaskManager")
	require.ErrorContains(t, err, "no disk scope")
	require.ErrorContains(t, err, "codec is nil")
	require.ErrorContains(t, err, "BatchSize -1")
}

// TestHashMergeRandom checks the map's merge by hash (Spark's ExternalIterator) against a
// built-in map: 1 to 20 streams of slots sorted by hash, each holding a key at most once, with
// few distinct hashes so that keys collide within and across streams, give every key once with the sum of its values.
func TestHashMergeRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	for round := range 200 {
		numStreams, numKeys, numHashes := 1+rng.IntN(20), 1+rng.IntN(300), 1+rng.IntN(50)
		want := map[int]int{}
		var streams []Iterator[slot[int, int]]
		for range numStreams {
			var s []slot[int, int]
			for k := range numKeys {
				if rng.IntN(3) == 0 {
					v := rng.IntN(100)
					want[k] += v
					s = append(s, slot[int, int]{hash: uint64(k%numHashes) + 1, key: k, val: v})
				}
			}
			slices.SortFunc(s, func(a, b slot[int, int]) int { return cmp.Compare(a.hash, b.hash) })
			streams = append(streams, SliceIterator(s))
		}
		m := newHashMerge(func(a, b int) int { return a + b }, streams)
		got := map[int]int{}
		last := uint64(0)
		for m.Next() {
			s := m.Value()
			require.GreaterOrEqual(t, s.hash, last, "round %d: hash order", round)
			last = s.hash
			_, dup := got[s.key]
			require.False(t, dup, "round %d: key %d twice", round, s.key)
			got[s.key] = s.val
		}
		require.NoError(t, m.Err())
		require.NoError(t, m.Close())
		require.Equal(t, want, got, "round %d: %d streams, %d keys, %d hashes", round, numStreams, numKeys, numHashes)
	}
}

// TestHashMergeRejectsUnsortedStream checks that a stream out of hash order stops the merge with
// ErrCorrupt instead of returning a key twice.
func TestHashMergeRejectsUnsortedStream(t *testing.T) {
	sorted := SliceIterator([]slot[int, int]{{hash: 1, key: 1, val: 1}, {hash: 5, key: 5, val: 1}})
	unsorted := SliceIterator([]slot[int, int]{{hash: 3, key: 3, val: 1}, {hash: 2, key: 2, val: 1}})
	m := newHashMerge(func(a, b int) int { return a + b }, []Iterator[slot[int, int]]{sorted, unsorted})
	for m.Next() {
	}
	require.ErrorIs(t, m.Err(), storage.ErrCorrupt)
	require.ErrorContains(t, m.Err(), "not sorted by hash")
	require.NoError(t, m.Close())
}
