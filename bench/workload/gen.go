package workload

import (
	"iter"
	"math/rand/v2"
	"strconv"

	"github.com/spillway/spillway/bench/baseline"
	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
)

// keyDist generates n key numbers from a seed.
type keyDist func(seed uint64, n int64) iter.Seq[uint64]

// distinctKeys is the key space of the uniform aggregation: one distinct key per four records.
func distinctKeys(n int64) uint64 { return uint64(max(n/4, 2)) }

func uniformKeys(seed uint64, n int64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		r := rand.New(rand.NewPCG(seed, 1))
		d := distinctKeys(n)
		for range n {
			if !yield(r.Uint64N(d)) {
				return
			}
		}
	}
}

// zipfKeys draws from Zipf(s = 1.1, v = 1) over a key space as large as the record count (2M
// records hit about 260k distinct keys).
func zipfKeys(seed uint64, n int64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		r := rand.New(rand.NewPCG(seed, 2))
		z := rand.NewZipf(r, 1.1, 1, uint64(max(n, 2))-1)
		for range n {
			if !yield(z.Uint64()) {
				return
			}
		}
	}
}

// keyString renders a key number as a string key such as "user-3w5e11264sgsf": the number is
// scattered by a bijection first, so every key has about the same length and hot Zipf keys are
// not also the short ones.
func keyString(k uint64) string { return "user-" + strconv.FormatUint(k*0x9e3779b97f4a7c15, 36) }

// recordGen generates n sort records with random 13-character keys and values 0, 1, 2, …. It is
// a collection.Iterator for Spillway and an iter.Seq (All) for the baselines.
type recordGen struct {
	env  *harness.Env
	r    *rand.Rand
	n, i int64
	cur  baseline.Record
}

// newRecordGen returns the generator; it reports progress to env every 4096 records unless env
// is nil.
func newRecordGen(env *harness.Env, seed uint64, n int64) *recordGen {
	return &recordGen{env: env, r: rand.New(rand.NewPCG(seed, 3)), n: n}
}

func (g *recordGen) Next() bool {
	if g.i >= g.n {
		return false
	}
	k := g.r.Uint64() | 1<<63 // 13 base-36 digits for every key
	g.cur = baseline.Record{Key: strconv.FormatUint(k, 36), Value: g.i}
	if g.i++; g.i%4096 == 0 && g.env != nil {
		g.env.AddRecords(4096)
	}
	return true
}

func (g *recordGen) Value() baseline.Record { return g.cur }
func (g *recordGen) Err() error             { return nil }
func (g *recordGen) Close() error           { g.n = g.i; return nil }

func (g *recordGen) All() iter.Seq[baseline.Record] {
	return func(yield func(baseline.Record) bool) {
		for g.Next() {
			if !yield(g.cur) {
				return
			}
		}
	}
}

// pairs adapts a record generator to the Pair iterator the collections take.
type pairs struct{ g *recordGen }

func (p pairs) Next() bool { return p.g.Next() }
func (p pairs) Value() collection.Pair[string, int64] {
	return collection.Pair[string, int64]{Key: p.g.cur.Key, Value: p.g.cur.Value}
}
func (p pairs) Err() error   { return nil }
func (p pairs) Close() error { return p.g.Close() }
