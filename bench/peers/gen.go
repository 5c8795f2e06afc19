package main

import (
	"fmt"
	"strconv"

	"github.com/spillway/spillway/storage"
)

// The input of every work is a pure function of the record number i, so that DuckDB computes it
// in SQL (over range(n)) exactly as the Go engines compute it in Go, and no engine reads input
// another engine prepared.

// h32 scatters a 32-bit number (a bijection of [0, 2^32): two xorshift-multiply rounds). Its
// SQL twin is h32SQL.
func h32(x uint64) uint64 {
	x = ((x >> 16) ^ x) * 0x45d9f3b & 0xffffffff
	x = ((x >> 16) ^ x) * 0x45d9f3b & 0xffffffff
	return (x >> 16) ^ x
}

// h32SQL is h32 of the BIGINT column col as nested DuckDB subqueries over from, projecting the
// hash as out beside the columns keep (a list of column names of from). Every product stays below 2^59, so DuckDB's
// overflow checks never fire.
func h32SQL(col, out, keep, from string) string {
	round := func(in, out, from string) string {
		return fmt.Sprintf("SELECT (xor(%[1]s >> 16, %[1]s) * 73244475) & 4294967295 AS %[2]s, %[3]s FROM (%[4]s)", in, out, keep, from)
	}
	q := round(col, "h_a", from)
	q = round("h_a", "h_b", q)
	return fmt.Sprintf("SELECT xor(h_b >> 16, h_b) AS %s, %s FROM (%s)", out, keep, q)
}

// aggKey is record i's key number in [0, keys): about records/keys records per key, spread
// over the input.
func aggKey(i, keys int64) int64 { return int64(h32(uint64(i)) % uint64(keys)) }

// aggValue is record i's value in the aggregations.
func aggValue(i int64) int64 { return i & 1023 }

// strKeyBase makes every string key 17 bytes ("user-1000000xxxxx"), longer than the 12 bytes
// DuckDB stores inline.
const strKeyBase = 100_000_000_000

// appendStrKey appends the string key of key number k.
func appendStrKey(b []byte, k int64) []byte {
	return strconv.AppendInt(append(b, "user-"...), strKeyBase+k, 10)
}

// sortKey is record i's key in the sort: distinct for every i < 2^32 (its high 32 bits are
// h32(i)), in no order.
func sortKey(i int64) int64 {
	return int64(h32(uint64(i))<<31 | h32(uint64(i)^0x55555555)&0x7fffffff)
}

// mix combines a key and a value into one summand of a check's hash.
func mix(a, b uint64) uint64 {
	x := a*0x9E3779B97F4A7C15 ^ b
	x ^= x >> 32
	x *= 0xD6E8FEB86659FD93
	return x ^ x>>32
}

// strID is the FNV-1a hash of a string key, its identity in a check's hash.
func strID[S ~string | ~[]byte](s S) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// check is what a run's result must agree on with every other engine's: the rows it produced,
// the sum of their values, and an order-independent hash of (key, value) over the rows. A sort
// also checks its order as it reads (sortCheck).
type check struct {
	Rows int64  `json:"rows"`
	Sum  int64  `json:"sum"`
	Hash uint64 `json:"hash"`
}

func (c *check) add(id uint64, v int64) {
	c.Rows++
	c.Sum += v
	c.Hash += mix(id, uint64(v))
}

func (c check) String() string {
	return fmt.Sprintf("%d rows, sum %d, hash %016x", c.Rows, c.Sum, c.Hash)
}

// sortCheck checks a sort's output: keys never decrease.
type sortCheck struct {
	check
	prev int64
}

// checkSorted reads a sort's output, checking its order, and returns its check.
func checkSorted(it storage.Iterator[storage.Pair[int64, int64]]) (check, error) {
	var c sortCheck
	for it.Next() {
		kv := it.Value()
		if err := c.add(kv.Key, kv.Value); err != nil {
			return check{}, err
		}
	}
	return c.check, it.Err()
}

func (c *sortCheck) add(k, v int64) error {
	if c.Rows > 0 && k < c.prev {
		return fmt.Errorf("sort output out of order at row %d: key %d after %d", c.Rows, k, c.prev)
	}
	c.prev = k
	c.check.add(uint64(k), v)
	return nil
}

// genIter is the input as the InsertAll of the collections and typed front ends takes it: pair i
// of n.
type genIter[K any] struct {
	i, n int64
	buf  []byte
	key  func(buf []byte, i int64) K
	val  func(i int64) int64
	cur  storage.Pair[K, int64]
}

func (g *genIter[K]) Next() bool {
	if g.i >= g.n {
		return false
	}
	g.cur = storage.Pair[K, int64]{Key: g.key(g.buf, g.i), Value: g.val(g.i)}
	g.i++
	return true
}
func (g *genIter[K]) Value() storage.Pair[K, int64] { return g.cur }
func (g *genIter[K]) Err() error                    { return nil }
func (g *genIter[K]) Close() error                  { return nil }
