package shuffle

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
)

// Partitioner mirrors Spark's Partitioner: it assigns every key to one of NumPartitions reduce
// partitions. Every map task of a shuffle must use the same Partitioner value, so that a key lands
// in the same reduce partition whichever task wrote it.
//
// collection.ExternalSorter accepts any value with these two methods, so the partitioners here
// satisfy its interface without collection importing this package.
type Partitioner[K any] interface {
	NumPartitions() int
	Partition(key K) int
}

// HashPartitioner mirrors Spark's HashPartitioner: partition = nonNegativeMod(hash(key), n).
//
// Integer keys hash to their own value, as Java's Integer.hashCode does, so key k lands in
// partition k mod n (Spark's test suites rely on that); every other comparable key is hashed with
// hash/maphash under a seed chosen when the partitioner is made. Unlike Spark, whose hash codes
// are the same in every JVM, a maphash seed lives in one process: a partitioner is not meant to
// be shared between processes.
type HashPartitioner[K comparable] struct {
	n    int
	seed maphash.Seed
}

// NewHashPartitioner returns a partitioner into n partitions. n < 1 is misuse and panics.
func NewHashPartitioner[K comparable](n int) *HashPartitioner[K] {
	if n < 1 {
		panic(fmt.Sprintf("shuffle: number of partitions must be at least 1, got %d", n))
	}
	return &HashPartitioner[K]{n: n, seed: maphash.MakeSeed()}
}

// NumPartitions returns the number of partitions.
func (p *HashPartitioner[K]) NumPartitions() int { return p.n }

// Partition returns the partition of key, in [0, NumPartitions).
func (p *HashPartitioner[K]) Partition(key K) int {
	if v, ok := integerValue(key); ok {
		return nonNegativeMod(v, p.n)
	}
	return int(maphash.Comparable(p.seed, key) % uint64(p.n))
}

func nonNegativeMod(v int64, n int) int {
	m := int(v % int64(n))
	if m < 0 {
		m += n
	}
	return m
}

// integerValue reports the value of an integer key. The interface conversion does not escape,
// so it costs no allocation.
func integerValue[K comparable](key K) (int64, bool) {
	switch v := any(key).(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint:
		return int64(v), true
	case uint64:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint8:
		return int64(v), true
	}
	return 0, false
}

// RangePartitioner mirrors Spark's RangePartitioner: it splits an ordered key space into roughly
// equal ranges whose bounds come from a sample of the keys. Keys up to and including bound i go to
// partition i; keys above the last bound go to the last partition. The number of partitions may
// be smaller than requested when the sample has fewer distinct keys.
type RangePartitioner[K any] struct {
	bounds     []K
	cmp        func(a, b K) int
	descending bool
}

// RangeSample is what one input partition contributes to a RangePartitioner: a uniform sample of
// its keys and how many keys it holds in all. ReservoirSample produces one.
// It mirrors one entry of RangePartitioner.sketch's result: (partition, item count, sample).
type RangeSample[K any] struct {
	Keys  []K
	Count int64
}

// SampleSizePerPartition is how many keys each of numInputs input partitions should sample for
// a RangePartitioner into partitions partitions: Spark samples 20 keys per output partition,
// at most a million in all, and over-samples three times.
func SampleSizePerPartition(partitions, numInputs int) int {
	if partitions <= 1 || numInputs < 1 {
		return 0
	}
	total := math.Min(20*float64(partitions), 1e6)
	return int(math.Ceil(3 * total / float64(numInputs)))
}

// ReservoirSample draws a uniform sample of at most size keys from next (Algorithm R) and counts
// all keys; next returns false when the input is exhausted. The seed makes the sample
// reproducible, as Spark seeds each partition's sampler from its index.
func ReservoirSample[K any](size int, seed uint64, next func() (K, bool)) RangeSample[K] {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := RangeSample[K]{Keys: make([]K, 0, size)}
	for {
		k, ok := next()
		if !ok {
			return s
		}
		s.Count++
		if len(s.Keys) < size {
			s.Keys = append(s.Keys, k)
		} else if j := rng.Int64N(s.Count); j < int64(size) {
			s.Keys[j] = k
		}
	}
}

// NewRangePartitioner determines the bounds of up to partitions ranges from the input
// partitions' samples, each sampled key weighted by how many keys it stands for (Spark's
// determineBounds). descending reverses the partition order. partitions < 1 is misuse and panics.
//
// Spark re-samples an input partition that holds far more keys than average; here the caller
// provides the samples, so a caller with skewed inputs should sample those more heavily.
func NewRangePartitioner[K any](partitions int, samples []RangeSample[K], cmp func(a, b K) int, descending bool) *RangePartitioner[K] {
	if partitions < 1 {
		panic(fmt.Sprintf("shuffle: number of partitions must be at least 1, got %d", partitions))
	}
	type candidate struct {
		key    K
		weight float64
	}
	var candidates []candidate
	for _, s := range samples {
		if len(s.Keys) == 0 {
			continue
		}
		w := float64(s.Count) / float64(len(s.Keys))
		for _, k := range s.Keys {
			candidates = append(candidates, candidate{k, w})
		}
	}
	p := &RangePartitioner[K]{cmp: cmp, descending: descending}
	if partitions == 1 || len(candidates) == 0 {
		return p
	}
	slices.SortStableFunc(candidates, func(a, b candidate) int { return cmp(a.key, b.key) })
	var sum float64
	for _, c := range candidates {
		sum += c.weight
	}
	step := sum / float64(partitions)
	target, cum := step, 0.0
	for _, c := range candidates {
		if len(p.bounds) == partitions-1 {
			break
		}
		cum += c.weight
		if cum > target && (len(p.bounds) == 0 || cmp(c.key, p.bounds[len(p.bounds)-1]) > 0) {
			p.bounds = append(p.bounds, c.key)
			target += step
		}
	}
	return p
}

// NewOrderedRangePartitioner is NewRangePartitioner for keys with a natural order.
func NewOrderedRangePartitioner[K cmp.Ordered](partitions int, samples []RangeSample[K]) *RangePartitioner[K] {
	return NewRangePartitioner(partitions, samples, cmp.Compare[K], false)
}

// NumPartitions returns the number of ranges: one more than the number of bounds.
func (p *RangePartitioner[K]) NumPartitions() int { return len(p.bounds) + 1 }

// Bounds returns the upper bounds of all but the last range, ascending.
func (p *RangePartitioner[K]) Bounds() []K { return slices.Clone(p.bounds) }

// Partition returns the range that holds key.
func (p *RangePartitioner[K]) Partition(key K) int {
	// The first bound not below key; keys above every bound go to the last range.
	i, _ := slices.BinarySearchFunc(p.bounds, key, p.cmp)
	if p.descending {
		return len(p.bounds) - i
	}
	return i
}
