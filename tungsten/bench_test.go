package tungsten

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/spillway/spillway/memory"
)

// BenchmarkAggregatorString sums 1M values over 100k string keys in memory (pages of 1 MiB).
// The bench/cmd/tungstenbench command compares with package collection at 10M records.
func BenchmarkAggregatorString(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "key-" + strconv.FormatInt(int64(rng.Uint64()>>1), 36)
	}
	idx := make([]int32, 1_000_000)
	for i := range idx {
		idx[i] = int32(rng.IntN(len(keys)))
	}
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			for b.Loop() {
				tm, scope := newTask(b, mode, 1<<30, 1<<20), newScope(b)
				a, err := NewAggregator(ctx, tm, scope, StringKey{}, Int64Key{}, sum, AggregatorConfig{})
				if err != nil {
					b.Fatal(err)
				}
				for i, k := range idx {
					if err := a.Insert(ctx, keys[k], int64(i)); err != nil {
						b.Fatal(err)
					}
				}
				it, err := a.Iterator(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for it.Next() {
				}
				_ = a.Close()
				tm.Close()
			}
		})
	}
}

var _ = memory.OnHeap
