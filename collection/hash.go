package collection

import (
	"hash/maphash"
	"reflect"
	"unsafe"
)

// hashKind selects the code path of Hasher.Hash. The zero kind marks a zero (unusable) Hasher.
type hashKind uint8

const (
	hashInvalid    hashKind = iota // zero Hasher
	hashWord8                      // 1-byte integer kinds
	hashWord16                     // 2-byte integer kinds
	hashWord32                     // 4-byte integer kinds
	hashWord64                     // 8-byte integer kinds
	hashString                     // string kinds: maphash.String
	hashComparable                 // everything else: maphash.Comparable
	hashFunc                       // a caller-supplied function (HasherFunc)
)

// Hasher is the seeded hash function of an AppendOnlyMap; it replaces Spark's
// `rehash(key.hashCode)` (Murmur3 of Object.hashCode) and, for ExternalAppendOnlyMap and
// ExternalSorter, Spark's HashComparator over `hashCode`.
//
// A Hasher made by NewHasher draws a random seed from hash/maphash, so two Hashers disagree on
// nearly every key: collections whose spills are merged by hash (ExternalAppendOnlyMap,
// ExternalSorter) must give every in-memory map they create the same Hasher value, and hash the
// keys they read back from disk with it too. Copies of a Hasher hash identically.
//
// Hash never returns 0: a result of 0 is reported as 1, so 0 can mark an empty slot. Equal keys
// always have equal hashes; distinct keys may share one, and every user must handle that.
//
// The zero Hasher is not usable (Hash panics); the map constructors replace it by NewHasher.
type Hasher[K comparable] struct {
	kind    hashKind
	seed    maphash.Seed
	wordKey uint64 // seed mixed into integer keys
	fn      func(K) uint64
}

// NewHasher returns a Hasher for K with a fresh random seed. Keys whose kind is an integer
// (int, int8..int64, uint, uint8..uint64, uintptr, named or not) are hashed by a seeded 64-bit
// finalizer (Murmur3's fmix64), which is a bijection on 64-bit values: distinct 8-byte integer
// keys never share a hash. String kinds use maphash.String; every other comparable type uses
// maphash.Comparable, the hash Go's own maps use (pointers hash by address, floats by value with
// +0 == -0, interfaces by dynamic type and value; an interface holding an uncomparable value
// panics as in a Go map).
func NewHasher[K comparable]() Hasher[K] {
	h := Hasher[K]{seed: maphash.MakeSeed()}
	h.wordKey = maphash.Comparable(h.seed, uint64(0x9e3779b97f4a7c15))
	t := reflect.TypeFor[K]()
	switch t.Kind() {
	case reflect.String:
		h.kind = hashString
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		switch t.Size() {
		case 1:
			h.kind = hashWord8
		case 2:
			h.kind = hashWord16
		case 4:
			h.kind = hashWord32
		default:
			h.kind = hashWord64
		}
	default:
		h.kind = hashComparable
	}
	return h
}

// HasherFunc returns a Hasher that hashes with fn. It exists for tests that force collisions
// (a constant fn puts every key in one probe chain) and for key types whose equality is coarser
// than their bits (fn must return equal hashes for equal keys). A result of 0 becomes 1.
// HasherFunc panics if fn is nil.
func HasherFunc[K comparable](fn func(K) uint64) Hasher[K] {
	if fn == nil {
		panic("collection: HasherFunc with a nil function")
	}
	return Hasher[K]{kind: hashFunc, fn: fn}
}

// IsZero reports whether h is the zero Hasher, which cannot hash.
func (h *Hasher[K]) IsZero() bool { return h.kind == hashInvalid }

// Hash returns the hash of k, never 0.
func (h *Hasher[K]) Hash(k K) uint64 {
	var x uint64
	p := unsafe.Pointer(&k)
	switch h.kind {
	case hashWord64:
		x = fmix64(*(*uint64)(p) ^ h.wordKey)
	case hashString:
		x = maphash.String(h.seed, *(*string)(p))
	case hashWord32:
		x = fmix64(uint64(*(*uint32)(p)) ^ h.wordKey)
	case hashWord16:
		x = fmix64(uint64(*(*uint16)(p)) ^ h.wordKey)
	case hashWord8:
		x = fmix64(uint64(*(*uint8)(p)) ^ h.wordKey)
	case hashComparable:
		x = maphash.Comparable(h.seed, k)
	case hashFunc:
		x = h.fn(k)
	default:
		panic("collection: use of a zero Hasher; make one with NewHasher or HasherFunc")
	}
	if x == 0 {
		x = 1
	}
	return x
}

// fmix64 is Murmur3's 64-bit finalizer: a bijection whose every output bit depends on every input
// bit, so masking the low bits of the result spreads sequential keys evenly.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
