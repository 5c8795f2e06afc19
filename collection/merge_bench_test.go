package collection

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// mergeRuns returns k sorted runs of n/k random hashes in all, distinct with near certainty.
func mergeRuns(n, k int) [][]uint64 {
	rng := rand.New(rand.NewPCG(3, 4))
	runs := make([][]uint64, k)
	for i := range n {
		runs[i%k] = append(runs[i%k], rng.Uint64()|1)
	}
	for _, r := range runs {
		slices.Sort(r)
	}
	return runs
}

// benchGroupSource is a groupSource over a sorted run of hashes, one value per key.
type benchGroupSource struct {
	run []uint64
	pos int
	enc [8]byte
	got bool
}

func (s *benchGroupSource) advance() bool {
	s.pos++
	if s.pos >= len(s.run) {
		return false
	}
	binary.BigEndian.PutUint64(s.enc[:], s.run[s.pos])
	s.got = false
	return true
}

func (s *benchGroupSource) head() (uint64, []byte, uint64) {
	return s.run[s.pos], s.enc[:], s.run[s.pos]
}

func (s *benchGroupSource) nextValue() (int, bool) {
	if s.got {
		return 0, false
	}
	s.got = true
	return 1, true
}

func (s *benchGroupSource) err() error   { return nil }
func (s *benchGroupSource) close() error { return nil }

// BenchmarkMerge measures the three k-way merges of the package on 64Ki elements split over k
// sorted inputs: Merge (ExternalSorter's merge by key), the hash merge of ExternalAppendOnlyMap
// (and of ExternalSorter's aggregation) and the grouping merge of ExternalGrouper.
func BenchmarkMerge(b *testing.B) {
	const n = 1 << 16
	for _, k := range []int{2, 16, 128} {
		runs := mergeRuns(n, k)
		b.Run("sorted/k="+strconv.Itoa(k), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				its := make([]Iterator[uint64], k)
				for i, r := range runs {
					its[i] = SliceIterator(r)
				}
				m := Merge(cmp.Compare[uint64], its...)
				for m.Next() {
				}
				if err := m.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		slots := make([][]slot[uint64, int64], k)
		for i, r := range runs {
			for _, h := range r {
				slots[i] = append(slots[i], slot[uint64, int64]{hash: h, key: h, val: 1})
			}
		}
		b.Run("hash/k="+strconv.Itoa(k), func(b *testing.B) {
			b.ReportAllocs()
			sum := func(a, b int64) int64 { return a + b }
			for b.Loop() {
				its := make([]Iterator[slot[uint64, int64]], k)
				for i, s := range slots {
					its[i] = SliceIterator(s)
				}
				m := newHashMerge(sum, its)
				for m.Next() {
				}
				if err := m.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("group/k="+strconv.Itoa(k), func(b *testing.B) {
			b.ReportAllocs()
			g := &ExternalGrouper[uint64, int]{}
			for b.Loop() {
				it := &groupIterator[uint64, int]{g: g}
				for _, r := range runs {
					it.sources = append(it.sources, &benchGroupSource{run: r, pos: -1})
				}
				for it.Next() {
				}
				if err := it.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
