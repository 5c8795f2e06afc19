package shuffle

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHashPartitionerIntegerKeysAreModN(t *testing.T) {
	p := NewHashPartitioner[int](7)
	require.Equal(t, 7, p.NumPartitions())
	for _, tt := range []struct{ key, want int }{{0, 0}, {1, 1}, {5, 5}, {7, 0}, {15, 1}, {-1, 6}, {-7, 0}} {
		require.Equal(t, tt.want, p.Partition(tt.key), "key %d", tt.key)
	}
	u := NewHashPartitioner[uint8](3)
	require.Equal(t, 255%3, u.Partition(255))
}

func TestHashPartitionerStringKeysAreStableAndSpread(t *testing.T) {
	p := NewHashPartitioner[string](8)
	counts := make([]int, 8)
	for i := range 8000 {
		k := string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		part := p.Partition(k)
		require.Equal(t, part, p.Partition(k), "the same key must always land in the same partition")
		counts[part]++
	}
	for i, c := range counts {
		require.Greater(t, c, 500, "partition %d is starved: %v", i, counts)
	}
}

func TestPartitionersRejectZeroPartitions(t *testing.T) {
	require.PanicsWithValue(t, "shuffle: number of partitions must be at least 1, got 0", func() { NewHashPartitioner[int](0) })
	require.Panics(t, func() { NewOrderedRangePartitioner[int](0, nil) })
}

func sampleOf(keys []int, size int, seed uint64) RangeSample[int] {
	i := 0
	return ReservoirSample(size, seed, func() (int, bool) {
		if i == len(keys) {
			return 0, false
		}
		i++
		return keys[i-1], true
	})
}

func TestReservoirSample(t *testing.T) {
	keys := make([]int, 1000)
	for i := range keys {
		keys[i] = i
	}
	s := sampleOf(keys, 100, 1)
	require.EqualValues(t, 1000, s.Count)
	require.Len(t, s.Keys, 100)
	seen := map[int]bool{}
	for _, k := range s.Keys {
		require.False(t, seen[k], "a reservoir sample holds each input at most once")
		seen[k] = true
	}
	require.Equal(t, s, sampleOf(keys, 100, 1), "the same seed gives the same sample")

	short := sampleOf(keys[:10], 100, 1)
	require.Equal(t, keys[:10], short.Keys)
}

func TestRangePartitionerBalancesAndOrders(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const inputs, perInput, parts = 4, 5000, 10
	var samples []RangeSample[int]
	var all []int
	for in := range inputs {
		keys := make([]int, perInput)
		for i := range keys {
			keys[i] = rng.IntN(1_000_000)
		}
		all = append(all, keys...)
		samples = append(samples, sampleOf(keys, SampleSizePerPartition(parts, inputs), uint64(in)))
	}
	p := NewOrderedRangePartitioner(parts, samples)
	require.Equal(t, parts, p.NumPartitions())
	require.True(t, slices.IsSorted(p.Bounds()))

	counts := make([]int, parts)
	for _, k := range all {
		counts[p.Partition(k)]++
	}
	for i, c := range counts {
		// 2000 keys per partition on average; sampling 600 keys per partition keeps each range
		// well within a factor of two.
		require.InDelta(t, len(all)/parts, c, float64(len(all)/parts)/2, "partition %d: %v", i, counts)
	}
	sorted := slices.Clone(all)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		require.LessOrEqual(t, p.Partition(sorted[i-1]), p.Partition(sorted[i]), "ranges must follow key order")
	}
}

func TestRangePartitionerEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		parts   int
		samples []RangeSample[int]
		want    int
	}{
		{"no samples", 5, nil, 1},
		{"one partition", 1, []RangeSample[int]{{Keys: []int{1, 2, 3}, Count: 3}}, 1},
		{"fewer distinct keys than partitions", 10, []RangeSample[int]{{Keys: []int{4, 4, 4, 9, 9}, Count: 5}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewOrderedRangePartitioner(tt.parts, tt.samples)
			require.LessOrEqual(t, p.NumPartitions(), tt.want)
			for _, k := range []int{-100, 0, 4, 5, 9, 100} {
				part := p.Partition(k)
				require.GreaterOrEqual(t, part, 0)
				require.Less(t, part, p.NumPartitions())
			}
		})
	}
}

func TestRangePartitionerDescending(t *testing.T) {
	s := []RangeSample[int]{{Keys: []int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, Count: 10}}
	asc := NewRangePartitioner(4, s, func(a, b int) int { return a - b }, false)
	desc := NewRangePartitioner(4, s, func(a, b int) int { return a - b }, true)
	for _, k := range []int{0, 25, 55, 85, 1000} {
		require.Equal(t, asc.NumPartitions()-1-asc.Partition(k), desc.Partition(k))
	}
	require.Equal(t, 0, asc.Partition(0))
	require.Equal(t, asc.NumPartitions()-1, asc.Partition(1000))
}

func BenchmarkHashPartitioner(b *testing.B) {
	ints := NewHashPartitioner[int64](200)
	strs := NewHashPartitioner[string](200)
	b.Run("int64", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			_ = ints.Partition(int64(i) * 7919)
		}
	})
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = strs.Partition("some-key-of-moderate-length")
		}
	})
}
