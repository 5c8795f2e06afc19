package collection

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/storage/faultfs"
)

// modPartitioner is the suites' HashPartitioner for integer keys: partition = non-negative
// key mod n.
type modPartitioner struct{ n int }

func (p modPartitioner) NumPartitions() int { return p.n }
func (p modPartitioner) Partition(k int64) int {
	m := int(k % int64(p.n))
	if m < 0 {
		m += p.n
	}
	return m
}

// sorterCase is one of the four combinations ExternalSorterSuite runs — aggregation (sums) or
// not, key ordering (ascending) or not — with spills and merges overlapped (SorterConfig.Overlap)
// or not.
type sorterCase struct {
	name       string
	agg, order bool
	overlap    Overlap
}

// sorterCases are the four combinations overlapped, then the same four not overlapped.
var sorterCases = func() []sorterCase {
	four := []sorterCase{
		{name: "aggregation and ordering", agg: true, order: true},
		{name: "aggregation only", agg: true},
		{name: "ordering only", order: true},
		{name: "neither"},
	}
	var out []sorterCase
	for _, o := range []struct {
		name    string
		overlap Overlap
	}{{"overlap", OverlapOn}, {"serial", OverlapOff}} {
		for _, c := range four {
			c.name, c.overlap = c.name+" "+o.name, o.overlap
			out = append(out, c)
		}
	}
	return out
}()

type int64Sorter = ExternalSorter[int64, int64, int64]

// newInt64Sorter returns a sorter of c's kind into partitions partitions (0: no partitioner),
// closed at cleanup.
func newInt64Sorter(t testing.TB, tm *memory.TaskManager, scope *storage.Scope, c sorterCase, partitions int,
	cfg SorterConfig[int64, int64, int64]) *int64Sorter {
	t.Helper()
	if c.agg {
		agg := sumAgg[int64]()
		cfg.Aggregator = &agg
	}
	if c.order {
		cfg.Ordering = cmp.Compare[int64]
	}
	if partitions > 0 {
		cfg.Partitioner = modPartitioner{partitions}
	}
	if cfg.Overlap == OverlapOff {
		cfg.Overlap = c.overlap
	}
	s, err := NewExternalSorter(tm, scope, int64Codec, int64Codec, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

type int64Pairs = []Pair[int64, int64]

// pairsOf returns (key(i), value(i)) for i < n.
func pairsOf(n int, key, value func(i int) int64) int64Pairs {
	out := make(int64Pairs, n)
	for i := range out {
		out[i] = Pair[int64, int64]{Key: key(i), Value: value(i)}
	}
	return out
}

func insertPairs(t testing.TB, s *int64Sorter, in int64Pairs) {
	t.Helper()
	require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
}

// readPartitions reads every partition through PartitionedIterator, checking that the ids come
// in order and that none is missing.
func readPartitions[K comparable, V, C any](t testing.TB, s *ExternalSorter[K, V, C]) [][]Pair[K, C] {
	t.Helper()
	pi, err := s.PartitionedIterator(context.Background())
	require.NoError(t, err)
	var out [][]Pair[K, C]
	for pi.Next() {
		require.Equal(t, len(out), pi.Partition())
		recs, err := Collect(pi.Records())
		require.NoError(t, err)
		out = append(out, recs)
	}
	require.NoError(t, pi.Err())
	require.NoError(t, pi.Close())
	require.Len(t, out, s.NumPartitions())
	return out
}

// expectPartitions is the model: each partition's records, with the values of each key summed
// when aggregating, sorted by key and value.
func expectPartitions(in int64Pairs, n int, agg bool) []int64Pairs {
	part := modPartitioner{max(n, 1)}
	out := make([]int64Pairs, part.n)
	if agg {
		sums := map[int64]int64{}
		for _, p := range in {
			sums[p.Key] += p.Value
		}
		for k, v := range sums {
			out[part.Partition(k)] = append(out[part.Partition(k)], Pair[int64, int64]{Key: k, Value: v})
		}
	} else {
		for _, p := range in {
			out[part.Partition(p.Key)] = append(out[part.Partition(p.Key)], p)
		}
	}
	for _, ps := range out {
		sortPairs(ps)
	}
	return out
}

func sortPairs(ps int64Pairs) {
	slices.SortFunc(ps, func(a, b Pair[int64, int64]) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value))
	})
}

// checkPartitions checks the sorter's contract on got — keys in order with an ordering, each
// key once when aggregating — and that each partition holds the model's records.
func checkPartitions(t testing.TB, c sorterCase, want, got []int64Pairs) {
	t.Helper()
	require.Len(t, got, len(want))
	for p, ps := range got {
		seen := map[int64]bool{}
		for i, r := range ps {
			// Plain checks per record: require's helpers would dominate the run time.
			if c.order && i > 0 {
				if c.agg && ps[i-1].Key >= r.Key {
					t.Fatalf("partition %d: keys not strictly increasing at %d (%d, %d)", p, i, ps[i-1].Key, r.Key)
				}
				if ps[i-1].Key > r.Key {
					t.Fatalf("partition %d: keys decreasing at %d (%d, %d)", p, i, ps[i-1].Key, r.Key)
				}
			}
			if c.agg {
				if seen[r.Key] {
					t.Fatalf("partition %d: key %d returned twice", p, r.Key)
				}
				seen[r.Key] = true
			}
		}
		ps = slices.Clone(ps)
		sortPairs(ps)
		require.Equal(t, len(want[p]), len(ps), "partition %d: record count", p)
		if len(ps) > 0 {
			require.Equal(t, want[p], ps, "partition %d", p)
		}
	}
}

// TestSP02SorterSpill is SP-02 (SpillableSuite "spill method in ExternalSorter"): spilling a
// PartitionedPairBuffer of (partition 0, key 0, value i) writes one temp shuffle file with
// records written == size and bytes written == the file's length.
func TestSP02SorterSpill(t *testing.T) {
	for _, size := range []int{10000, 10001, 0} {
		t.Run("size="+strconv.Itoa(size), func(t *testing.T) {
			scope := newTestScope(t, nil)
			s := newInt64Sorter(t, newTestTask(t, 64<<20), scope, sorterCases[3], 0, SorterConfig[int64, int64, int64]{})
			s.sp.Lock()
			for i := range size {
				require.NoError(t, s.buf.Insert(0, 0, int64(i)))
			}
			disk, err := s.spillCollection()
			s.sp.Unlock()
			require.NoError(t, err)

			require.Len(t, s.spills, 1)
			f := s.spills[0]
			require.Equal(t, storage.KindTempShuffle, f.file.id.Kind())
			require.Equal(t, 1, scope.Files())
			path, err := scope.Manager().File(f.file.id)
			require.NoError(t, err)
			info, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, int64(size), f.file.records, "records written")
			require.Equal(t, info.Size(), f.file.size, "bytes written == file length")
			require.Equal(t, info.Size(), disk)
			require.Equal(t, []int64{int64(size)}, f.counts)
			require.Equal(t, []int64{0, info.Size()}, f.offsets)

			require.NoError(t, s.Close())
			require.Zero(t, scope.Files())
		})
	}
}

// TestES01EmptyDataStream is ES-01 (ExternalSorterSuite "empty data stream"), for the four
// combinations with HashPartitioner(3).
func TestES01EmptyDataStream(t *testing.T) {
	for _, c := range sorterCases {
		t.Run(c.name, func(t *testing.T) {
			tm, scope := newTestTask(t, 64<<20), newTestScope(t, nil)
			s := newInt64Sorter(t, tm, scope, c, 3, SorterConfig[int64, int64, int64]{})
			insertPairs(t, s, nil)
			it, err := s.Iterator(context.Background())
			require.NoError(t, err)
			require.False(t, it.Next())
			require.NoError(t, it.Err())
			require.NoError(t, it.Close())
			require.NoError(t, s.Close())

			s = newInt64Sorter(t, tm, scope, c, 3, SorterConfig[int64, int64, int64]{})
			require.Equal(t, make([]int64Pairs, 3), readPartitions(t, s))

			s = newInt64Sorter(t, tm, scope, c, 3, SorterConfig[int64, int64, int64]{})
			var buf bytes.Buffer
			lengths, err := s.WritePartitionedFile(context.Background(), &buf)
			require.NoError(t, err)
			require.Equal(t, []int64{0, 0, 0}, lengths)
			require.Zero(t, buf.Len())
		})
	}
}

// TestES02FewElementsPerPartition is ES-02 (ExternalSorterSuite "few elements per partition"):
// every partition id is present, empty ones included.
func TestES02FewElementsPerPartition(t *testing.T) {
	for _, c := range sorterCases {
		t.Run(c.name, func(t *testing.T) {
			s := newInt64Sorter(t, newTestTask(t, 64<<20), newTestScope(t, nil), c, 7, SorterConfig[int64, int64, int64]{})
			insertPairs(t, s, int64Pairs{{Key: 1, Value: 1}, {Key: 2, Value: 2}, {Key: 5, Value: 5}})
			want := []int64Pairs{nil, {{Key: 1, Value: 1}}, {{Key: 2, Value: 2}}, nil, nil, {{Key: 5, Value: 5}}, nil}
			require.Equal(t, want, readPartitions(t, s))
		})
	}
}

// TestES04NoPartialAggregationOrSorting is ES-04 (ExternalSorterSuite "no partial aggregation
// or sorting"), without and with spills.
func TestES04NoPartialAggregationOrSorting(t *testing.T) {
	const n = 100000
	in := pairsOf(n, func(i int) int64 { return int64(i / 4) }, func(i int) int64 { return int64(i) })
	for _, spill := range []bool{false, true} {
		t.Run(map[bool]string{false: "in memory", true: "with spills"}[spill], func(t *testing.T) {
			cfg := SorterConfig[int64, int64, int64]{}
			if spill {
				cfg.Spill.ForceSpillElements = n / 10
			}
			s := newInt64Sorter(t, newTestTask(t, 256<<20), newTestScope(t, nil), sorterCases[3], 3, cfg)
			insertPairs(t, s, in)
			require.Equal(t, spill, s.NumSpills() > 0, "spills: %d", s.NumSpills())
			got := readPartitions(t, s)
			for p := range got {
				var want int64Pairs
				for i := range n {
					if (i/4)%3 == p {
						want = append(want, Pair[int64, int64]{Key: int64(i / 4), Value: int64(i)})
					}
				}
				sortPairs(got[p])
				require.Equal(t, want, got[p], "partition %d", p)
			}
		})
	}
}

// TestES05PartialAggregation is ES-05 (ExternalSorterSuite "partial aggregation without spill"
// and "partial aggregation with spill, no ordering"): sums of (i/2, i) per key are 4k+1.
func TestES05PartialAggregation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		force int64
	}{{"without spill", 100, 0}, {"with spill", 100000, 10000}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := SorterConfig[int64, int64, int64]{Spill: SpillConfig{ForceSpillElements: tc.force}}
			s := newInt64Sorter(t, newTestTask(t, 256<<20), newTestScope(t, nil), sorterCases[1], 3, cfg)
			insertPairs(t, s, pairsOf(tc.n, func(i int) int64 { return int64(i / 2) }, func(i int) int64 { return int64(i) }))
			require.Equal(t, tc.force > 0, s.NumSpills() > 0, "spills: %d", s.NumSpills())
			got := readPartitions(t, s)
			for p := range got {
				var want int64Pairs
				for k := range tc.n / 2 {
					if k%3 == p {
						want = append(want, Pair[int64, int64]{Key: int64(k), Value: int64(4*k + 1)})
					}
				}
				sortPairs(got[p])
				require.Equal(t, want, got[p], "partition %d", p)
			}
			m := s.Metrics()
			require.Positive(t, m.PeakMemoryUsedBytes)
			if tc.force > 0 {
				require.Positive(t, m.MemoryBytesSpilled)
				require.Positive(t, m.DiskBytesSpilled)
			}
		})
	}
}

// TestES06SortingWithOrdering is ES-06 (ExternalSorterSuite's sorting tests, adapted): with an
// ascending ordering, with and without aggregation and with forced spills, each partition's
// keys are in order and its contents equal the input's.
func TestES06SortingWithOrdering(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 6))
	in := pairsOf(20000, func(int) int64 { return rng.Int64N(3000) - 1000 }, func(int) int64 { return rng.Int64N(100) })
	for _, c := range []sorterCase{sorterCases[0], sorterCases[2], sorterCases[4], sorterCases[6]} {
		t.Run(c.name, func(t *testing.T) {
			cfg := SorterConfig[int64, int64, int64]{Spill: SpillConfig{ForceSpillElements: 2500, BatchSize: 100}}
			s := newInt64Sorter(t, newTestTask(t, 256<<20), newTestScope(t, nil), c, 4, cfg)
			insertPairs(t, s, in)
			require.Positive(t, s.NumSpills())
			it, err := s.Iterator(context.Background())
			require.NoError(t, err)
			all, err := Collect(it)
			require.NoError(t, err)
			got := make([]int64Pairs, 4)
			part := modPartitioner{4}
			for i, r := range all { // partitions come in order, one after the other
				p := part.Partition(r.Key)
				if i > 0 {
					require.LessOrEqual(t, part.Partition(all[i-1].Key), p)
				}
				got[p] = append(got[p], r)
			}
			checkPartitions(t, c, expectPartitions(in, 4, c.agg), got)
		})
	}
}

// TestExternalSorterMetamorphic runs the same random input through an unlimited budget and a
// tiny one (many spills, small batches), with a hasher that forces collisions between distinct
// keys, and requires the same records in every partition.
func TestExternalSorterMetamorphic(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	collide := HasherFunc(func(k int64) uint64 { return uint64(k%97) + 1 })
	for round := range 3 {
		n := 2000 + rng.IntN(8000)
		keys := int64(1 + rng.IntN(4000))
		parts := 1 + rng.IntN(6)
		in := pairsOf(n, func(int) int64 { return rng.Int64N(keys) - keys/3 }, func(int) int64 { return rng.Int64N(1000) })
		tiny := SorterConfig[int64, int64, int64]{Spill: SpillConfig{
			InitialThreshold:   NoInitialThreshold,
			ForceSpillElements: int64(50 + rng.IntN(1500)),
			BatchSize:          1 + rng.IntN(200),
			Compression:        storage.Compression(rng.IntN(4)),
		}}
		for _, c := range sorterCases {
			for _, hasher := range []Hasher[int64]{{}, collide} {
				big := newInt64Sorter(t, newTestTask(t, 1<<30), newTestScope(t, nil), c, parts,
					SorterConfig[int64, int64, int64]{Hasher: hasher})
				insertPairs(t, big, in)
				require.Zero(t, big.NumSpills())
				want := readPartitions(t, big)

				cfg := tiny
				cfg.Hasher = hasher
				small := newInt64Sorter(t, newSparkTask(t, 32<<10), newTestScope(t, nil), c, parts, cfg)
				insertPairs(t, small, in)
				require.Positive(t, small.NumSpills(), "round %d %s: no spill", round, c.name)
				got := readPartitions(t, small)

				model := expectPartitions(in, parts, c.agg)
				checkPartitions(t, c, model, want)
				checkPartitions(t, c, model, got)
			}
		}
	}
}

// TestWritePartitionedFileRoundTrip reads each partition of WritePartitionedFile's output alone,
// as a shuffle reader does, with storage's PairCodec.
func TestWritePartitionedFileRoundTrip(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	const parts = 5
	// No key lands in partition 3: its length must be 0.
	in := pairsOf(30000, func(int) int64 {
		for {
			if k := rng.Int64N(5000); k%parts != 3 {
				return k
			}
		}
	}, func(int) int64 { return rng.Int64N(1 << 40) })
	codec := storage.NewPairCodec[int64, int64](int64Codec, int64Codec)
	for _, c := range sorterCases {
		for _, force := range []int64{0, 4000} {
			t.Run(c.name, func(t *testing.T) {
				cfg := SorterConfig[int64, int64, int64]{Spill: SpillConfig{ForceSpillElements: force, BatchSize: 500}}
				s := newInt64Sorter(t, newTestTask(t, 256<<20), newTestScope(t, nil), c, parts, cfg)
				insertPairs(t, s, in)
				require.Equal(t, force > 0, s.NumSpills() > 0)
				var buf bytes.Buffer
				lengths, err := s.WritePartitionedFile(context.Background(), &buf)
				require.NoError(t, err)
				require.Len(t, lengths, parts)
				require.Zero(t, lengths[3])
				var off int64
				got := make([]int64Pairs, parts)
				for p, n := range lengths {
					seg := buf.Bytes()[off : off+n]
					off += n
					tr := storage.NewTypedReader(storage.NewRecordReader(bytes.NewReader(seg), n), codec)
					for {
						r, err := tr.Next()
						if errors.Is(err, io.EOF) {
							break
						}
						require.NoError(t, err)
						got[p] = append(got[p], r)
					}
				}
				require.Equal(t, int64(buf.Len()), off, "lengths add up to the output")
				checkPartitions(t, c, expectPartitions(in, parts, c.agg), got)
				_, err = s.WritePartitionedFile(context.Background(), &buf)
				require.ErrorIs(t, err, ErrIterated)
			})
		}
	}
}

// TestExternalSorterCleanup checks that spill files are gone and memory is back to zero after
// Close: after a full read, after an early Close mid-iteration, and after write and read errors.
func TestExternalSorterCleanup(t *testing.T) {
	ctx := context.Background()
	in := pairsOf(20000, func(i int) int64 { return int64(i*7919) % 6000 }, func(i int) int64 { return int64(i) })
	spilling := SorterConfig[int64, int64, int64]{Spill: SpillConfig{ForceSpillElements: 3000}}

	for _, c := range sorterCases {
		t.Run(c.name+"/early close mid-iteration", func(t *testing.T) {
			tm, scope := newTestTask(t, 256<<20), newTestScope(t, nil)
			s := newInt64Sorter(t, tm, scope, c, 3, spilling)
			insertPairs(t, s, in)
			require.Positive(t, scope.Files())
			it, err := s.Iterator(ctx)
			require.NoError(t, err)
			for range 10 {
				require.True(t, it.Next())
			}
			require.NoError(t, s.Close())
			require.Zero(t, scope.Files())
			require.Zero(t, s.Used())
			require.False(t, it.Next())
			require.NoError(t, it.Close())
			require.ErrorIs(t, s.InsertAll(ctx, SliceIterator(in)), ErrClosed)
		})

		t.Run(c.name+"/partition iterator abandoned", func(t *testing.T) {
			scope := newTestScope(t, nil)
			s := newInt64Sorter(t, newTestTask(t, 256<<20), scope, c, 3, spilling)
			insertPairs(t, s, in)
			pi, err := s.PartitionedIterator(ctx)
			require.NoError(t, err)
			require.True(t, pi.Next())
			require.True(t, pi.Records().Next())
			require.True(t, pi.Next()) // skips the rest of partition 0
			require.Equal(t, 1, pi.Partition())
			require.NoError(t, s.Close())
			require.Zero(t, scope.Files())
			require.False(t, pi.Next())
		})
	}

	t.Run("full read deletes files as they end", func(t *testing.T) {
		scope := newTestScope(t, nil)
		s := newInt64Sorter(t, newTestTask(t, 256<<20), scope, sorterCases[1], 3, spilling)
		insertPairs(t, s, in)
		it, err := s.Iterator(ctx)
		require.NoError(t, err)
		_, err = Collect(it)
		require.NoError(t, err)
		require.Zero(t, scope.Files())
		require.Zero(t, s.Used())
	})

	for _, c := range []sorterCase{sorterCases[0], sorterCases[2], sorterCases[4], sorterCases[6]} {
		t.Run(c.name+"/spill write error", func(t *testing.T) {
			tm := newTestTask(t, 256<<20)
			scope := newTestScope(t, faultfs.New(nil, 0, faultfs.Rule{Op: faultfs.Write, AfterBytes: 40 << 10}))
			s := newInt64Sorter(t, tm, scope, c, 3, spilling)
			err := s.InsertAll(ctx, SliceIterator(in))
			require.ErrorIs(t, err, faultfs.ErrInjected)
			require.Positive(t, s.NumSpills(), "the first spills fit")
			require.Equal(t, s.NumSpills(), scope.Files(), "the failed spill file is deleted at once")
			require.Zero(t, s.Used())
			require.ErrorIs(t, s.InsertAll(ctx, SliceIterator(in)), faultfs.ErrInjected, "the error sticks")
			_, err = s.Iterator(ctx)
			require.ErrorIs(t, err, faultfs.ErrInjected)
			require.NoError(t, s.Close())
			require.Zero(t, scope.Files())
		})
	}

	t.Run("corrupt spill file", func(t *testing.T) {
		scope := newTestScope(t, nil)
		s := newInt64Sorter(t, newTestTask(t, 256<<20), scope, sorterCases[2], 3,
			SorterConfig[int64, int64, int64]{Spill: SpillConfig{ForceSpillElements: 3000, Compression: storage.CompressionNone}})
		insertPairs(t, s, in)
		path, err := scope.Manager().File(s.spills[0].file.id)
		require.NoError(t, err)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		data[len(data)/2] ^= 0x55
		require.NoError(t, os.WriteFile(path, data, 0o644))
		it, err := s.Iterator(ctx)
		require.NoError(t, err)
		for it.Next() {
		}
		require.ErrorIs(t, it.Err(), storage.ErrCorrupt)
		require.NoError(t, s.Close())
		require.Zero(t, scope.Files())
	})

	t.Run("output write error", func(t *testing.T) {
		scope := newTestScope(t, nil)
		s := newInt64Sorter(t, newTestTask(t, 256<<20), scope, sorterCases[3], 3, spilling)
		insertPairs(t, s, in)
		_, err := s.WritePartitionedFile(ctx, failingWriter{})
		require.ErrorIs(t, err, errDiskFull)
		require.NoError(t, s.Close())
		require.Zero(t, scope.Files())
	})
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// TestExternalSorterForcedSpillWhileReading checks SPARK-22713's guarantee for the sorter
// (ExternalSorter.SpillableIterator in Spark): once Iterator was called, another consumer's
// demand force-spills the unread in-memory records; afterwards nothing references the in-memory collection (the weak
// pointer to its backing array clears), its memory is released, and the rest is read from disk.
// Before Iterator, and while used for shuffle writing, a forced spill does nothing.
func TestExternalSorterForcedSpillWhileReading(t *testing.T) {
	ctx := context.Background()
	const n = 20000
	in := pairsOf(n, func(i int) int64 { return int64(i / 2) }, func(i int) int64 { return int64(i) })
	for _, c := range sorterCases {
		for _, earlier := range []bool{false, true} {
			name := c.name + map[bool]string{false: "/in memory only", true: "/merging with spills"}[earlier]
			t.Run(name, func(t *testing.T) {
				const budget = 64 << 20
				tm, scope := newTestTask(t, budget), newTestScope(t, nil)
				cfg := SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold}}
				if earlier {
					cfg.Spill.ForceSpillElements = n / 2
				}
				s := newInt64Sorter(t, tm, scope, c, 3, cfg)
				insertPairs(t, s, in)
				spills := s.NumSpills()
				require.Equal(t, earlier, spills > 0)

				other := newTestConsumer(tm)
				used := s.Used()
				require.Positive(t, used)
				got := other.use(t, budget-used/2) // short: the TaskManager asks the sorter
				require.Equal(t, used, s.Used(), "no forced spill while filling")
				other.free(got)

				var array weak.Pointer[Pair[int64, int64]]
				var table weak.Pointer[slot[partKey[int64], int64]]
				if c.agg {
					table = weak.Make(&s.m.m.data[0])
				} else {
					array = weak.Make(&s.buf.vec.data.pairs[0])
				}
				it, err := s.Iterator(ctx)
				require.NoError(t, err)
				var read int64Pairs
				for range n / 8 {
					require.True(t, it.Next())
					read = append(read, it.Value())
				}
				got = other.use(t, budget-used/2)
				require.Zero(t, s.Used(), "the forced spill released the sorter's memory")
				require.Equal(t, spills+1, s.NumSpills())
				require.Equal(t, int64(1), s.Metrics().ForcedSpills)
				other.free(got)
				if c.agg {
					require.True(t, collected(table), "the in-memory map is still referenced")
				} else {
					require.True(t, collected(array), "the in-memory buffer is still referenced")
				}

				rest, err := Collect(it)
				require.NoError(t, err)
				got2 := make([]int64Pairs, 3)
				for _, r := range append(read, rest...) {
					got2[modPartitioner{3}.Partition(r.Key)] = append(got2[modPartitioner{3}.Partition(r.Key)], r)
				}
				checkPartitions(t, c, expectPartitions(in, 3, c.agg), got2)
				require.Zero(t, scope.Files())
			})
		}
	}

	t.Run("forced from another goroutine while reading", func(t *testing.T) {
		const budget = 64 << 20
		tm := newTestTask(t, budget)
		c := sorterCases[0]
		s := newInt64Sorter(t, tm, newTestScope(t, nil), c, 3,
			SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: n / 3}})
		insertPairs(t, s, in)
		it, err := s.Iterator(ctx)
		require.NoError(t, err)
		var out int64Pairs
		for range 100 {
			require.True(t, it.Next())
			out = append(out, it.Value())
		}
		// Another goroutine asks for the whole budget while the reader stands between two records:
		// the TaskManager grants what is free and force-spills the reader's unread in-memory
		// records for the rest.
		require.Positive(t, s.Used(), "the in-memory records are being read")
		other := newTestConsumer(tm)
		type result struct {
			n   int64
			err error
		}
		done := make(chan result)
		go func() {
			got, err := other.base.Acquire(ctx, budget)
			done <- result{got, err}
		}()
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, int64(budget)-s.io.Used(), r.n, "everything but the spill readers' memory")
		require.Equal(t, int64(1), s.Metrics().ForcedSpills)
		require.Zero(t, s.Used())
		for it.Next() {
			out = append(out, it.Value())
		}
		require.NoError(t, it.Err())
		other.free(r.n)
		require.NoError(t, it.Close())
		require.Zero(t, s.Used())
		parts := make([]int64Pairs, 3)
		for _, r := range out {
			parts[modPartitioner{3}.Partition(r.Key)] = append(parts[modPartitioner{3}.Partition(r.Key)], r)
		}
		checkPartitions(t, c, expectPartitions(in, 3, c.agg), parts)
	})

	t.Run("no forced spill while writing a shuffle", func(t *testing.T) {
		const budget = 64 << 20
		tm := newTestTask(t, budget)
		s := newInt64Sorter(t, tm, newTestScope(t, nil), sorterCases[3], 3,
			SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold}})
		insertPairs(t, s, in)
		pi, err := s.PartitionedIterator(ctx)
		require.NoError(t, err)
		require.True(t, pi.Next())
		require.True(t, pi.Records().Next())
		used := s.Used()
		other := newTestConsumer(tm)
		other.free(other.use(t, budget-used/2))
		require.Equal(t, used, s.Used())
		require.Zero(t, s.NumSpills())
		require.NoError(t, pi.Close())
		require.Zero(t, s.Used(), "closing the reader releases the memory")
	})
}

// TestExternalSorterForcedSpillWriteError checks that a forced spill of the reader that fails
// to write ends the iteration with the error (after the records already read ahead), releases
// the memory and leaves no file.
func TestExternalSorterForcedSpillWriteError(t *testing.T) {
	const budget = 64 << 20
	fs := faultfs.New(nil, 0, faultfs.Rule{Op: faultfs.Write, Prob: 1})
	fs.SetEnabled(false)
	tm, scope := newTestTask(t, budget), newTestScope(t, fs)
	s := newInt64Sorter(t, tm, scope, sorterCases[2], 3,
		SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold}})
	insertPairs(t, s, pairsOf(20000, func(i int) int64 { return int64(i) }, func(i int) int64 { return int64(i) }))
	it, err := s.Iterator(context.Background())
	require.NoError(t, err)
	require.True(t, it.Next())
	fs.SetEnabled(true)
	other := newTestConsumer(tm)
	_, err = other.base.Acquire(context.Background(), budget)
	require.ErrorIs(t, err, faultfs.ErrInjected, "the failed spill is reported to the requester")
	require.Zero(t, s.Used())
	require.Zero(t, scope.Files())
	n := 1
	for it.Next() {
		n++
	}
	require.ErrorIs(t, it.Err(), faultfs.ErrInjected)
	require.Less(t, n, 20000)
	require.NoError(t, it.Close())
	require.NoError(t, s.Close())
	other.free(other.Used())
}

// TestExternalSorterAliasingKeys sorts string keys decoded by an aliasing codec through spills
// and merges: keys the merge keeps while it reads on must have been cloned.
func TestExternalSorterAliasingKeys(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(map[bool]string{false: "ordering", true: "aggregation and ordering"}[agg], func(t *testing.T) {
			cfg := SorterConfig[string, int64, int64]{
				Ordering: strings.Compare,
				Spill:    SpillConfig{ForceSpillElements: 700, BatchSize: 7},
			}
			if agg {
				a := sumAgg[string]()
				cfg.Aggregator = &a
			}
			s, err := NewExternalSorter(newTestTask(t, 64<<20), newTestScope(t, nil), storage.AliasStringCodec{}, int64Codec, cfg)
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Close()) }()
			var in []Pair[string, int64]
			want := map[string]int64{}
			for i := range 5000 {
				k := "key-" + strconv.Itoa(i*7919%1000)
				in = append(in, Pair[string, int64]{Key: k, Value: int64(i)})
				want[k] += int64(i)
			}
			require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
			require.Positive(t, s.NumSpills())
			it, err := s.Iterator(context.Background())
			require.NoError(t, err)
			out, err := Collect(it)
			require.NoError(t, err)
			got := map[string]int64{}
			for i, p := range out {
				if i > 0 {
					require.LessOrEqual(t, out[i-1].Key, p.Key)
				}
				got[p.Key] += p.Value
			}
			require.Equal(t, want, got)
			if agg {
				require.Len(t, out, len(want))
			}
		})
	}
}

// TestExternalSorterErrors checks configuration errors and misuse.
func TestExternalSorterErrors(t *testing.T) {
	tm, scope := newTestTask(t, 64<<20), newTestScope(t, nil)
	t.Run("config", func(t *testing.T) {
		_, err := NewExternalSorter(tm, scope, int64Codec, stringCodec, SorterConfig[int64, int64, string]{})
		require.ErrorContains(t, err, "C (string) must be V (int64)")
		_, err = NewExternalSorter(tm, scope, int64Codec, int64Codec, SorterConfig[int64, int64, int64]{Partitioner: modPartitioner{0}})
		require.ErrorContains(t, err, "0 partitions")
		_, err = NewExternalSorter(nil, nil, nil, nil, SorterConfig[int64, int64, int64]{Aggregator: &Aggregator[int64, int64, int64]{}})
		for _, want := range []string{"TaskManager", "disk scope", "key codec is nil", "combiner codec is nil", "CreateCombiner"} {
			require.ErrorContains(t, err, want)
		}
	})
	t.Run("partition out of range", func(t *testing.T) {
		s := newInt64Sorter(t, tm, scope, sorterCases[3], 0, SorterConfig[int64, int64, int64]{Partitioner: badPartitioner{}})
		require.ErrorContains(t, s.InsertAll(context.Background(), SliceIterator(int64Pairs{{Key: 1, Value: 1}})), "partition 2, outside [0, 2)")
	})
	t.Run("cancelled", func(t *testing.T) {
		s := newInt64Sorter(t, tm, scope, sorterCases[0], 2, SorterConfig[int64, int64, int64]{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, s.InsertAll(ctx, SliceIterator(int64Pairs{{Key: 1, Value: 1}})), context.Canceled)
	})
	t.Run("read once", func(t *testing.T) {
		s := newInt64Sorter(t, tm, scope, sorterCases[0], 2, SorterConfig[int64, int64, int64]{})
		insertPairs(t, s, int64Pairs{{Key: 1, Value: 1}})
		_, err := s.Iterator(context.Background())
		require.NoError(t, err)
		_, err = s.Iterator(context.Background())
		require.ErrorIs(t, err, ErrIterated)
		require.ErrorIs(t, s.InsertAll(context.Background(), SliceIterator(int64Pairs{{Key: 1, Value: 1}})), ErrIterated)
		require.NoError(t, s.Close())
		require.NoError(t, s.Close())
		_, err = s.PartitionedIterator(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
}

// badPartitioner claims two partitions and puts every key in partition 2.
type badPartitioner struct{}

func (badPartitioner) NumPartitions() int  { return 2 }
func (badPartitioner) Partition(int64) int { return 2 }
