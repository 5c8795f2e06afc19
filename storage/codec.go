package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// ErrCorrupt reports data that fails its checksum or framing: a torn, truncated or altered record
// file, or bytes a codec cannot decode. It is always wrapped with the offsets and sizes involved;
// test with errors.Is.
var ErrCorrupt = errors.New("storage: corrupt data")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Codec encodes and decodes values of one type to and from bytes; it takes the place of a Spark
// Serializer instance for one record type (Spark's JavaSerializer/KryoSerializer streams).
//
// Append appends the encoding of v to dst and returns the extended slice (the strconv.AppendX
// convention), so callers reuse one buffer for many records. Decode decodes one value from the
// front of src and returns it with the number of bytes consumed; src may hold more bytes after it.
// Malformed input gives an error wrapping ErrCorrupt, never a panic. Codecs must be
// self-delimiting (Decode finds the end by itself) so they compose in StructCodec, PairCodec and
// SliceCodec.
//
// Unless a codec's doc says it aliases, decoded values do not share memory with src, so they may
// be kept after the buffer is reused (e.g. as Go map keys, which would otherwise change under
// the map when the buffer is reused).
//
// Which codec to use: the ready codecs for numbers, strings, bytes and bools; NewBinaryCodec for
// any type that implements encoding.BinaryAppender and encoding.BinaryUnmarshaler (time.Time,
// netip.Addr, your own); NewStructCodec with one Field per field for your structs; SliceCodec
// and PairCodec for slices and pairs; FuncCodec for a hand-written encoding; GobCodec, the slow
// path, for anything else.
type Codec[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(src []byte) (T, int, error)
}

// Signed is the set of signed integer types VarintCodec encodes.
// Spark has no counterpart: its serializers are not typed per value.
type Signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

// Unsigned is the set of unsigned integer types UvarintCodec encodes.
// Spark has no counterpart: its serializers are not typed per value.
type Unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// decodeUvarint decodes a canonical (shortest-form) unsigned LEB128 varint. Non-canonical
// encodings are rejected so that every accepted input re-encodes to the same bytes. The one-byte
// case is inlined.
func decodeUvarint(src []byte) (uint64, int, error) {
	if len(src) > 0 && src[0] < 0x80 {
		return uint64(src[0]), 1, nil
	}
	return decodeUvarintSlow(src)
}

func decodeUvarintSlow(src []byte) (uint64, int, error) {
	if len(src) < 8 {
		return decodeUvarintBytes(src)
	}
	// Decode the first 8 bytes at once: find the terminating byte (high bit clear) and gather
	// the 7-bit groups of the bytes before it with three shift-and-mask steps.
	w := binary.LittleEndian.Uint64(src)
	if stop := ^w & 0x8080808080808080; stop != 0 {
		n := bits.TrailingZeros64(stop)>>3 + 1
		if n > 1 && src[n-1] == 0 {
			return 0, 0, corruptf("non-canonical varint of %d bytes", n)
		}
		return gather7(w & (^uint64(0) >> (64 - 8*n))), n, nil
	}
	if len(src) < binary.MaxVarintLen64 {
		return decodeUvarintBytes(src)
	}
	x := gather7(w)
	b8, b9 := src[8], src[9]
	switch {
	case b8 < 0x80:
		if b8 == 0 {
			return 0, 0, corruptf("non-canonical varint of %d bytes", 9)
		}
		return x | uint64(b8)<<56, 9, nil
	case b9 >= 0x80: // too long or truncated: let the byte loop tell which
		return decodeUvarintBytes(src)
	case b9 > 1:
		return 0, 0, corruptf("varint overflows 64 bits")
	case b9 == 0:
		return 0, 0, corruptf("non-canonical varint of %d bytes", binary.MaxVarintLen64)
	}
	return x | uint64(b8&0x7f)<<56 | uint64(b9)<<63, binary.MaxVarintLen64, nil
}

// gather7 packs the low 7 bits of each byte of w (little-endian) into 56 contiguous bits.
func gather7(w uint64) uint64 {
	w &= 0x7f7f7f7f7f7f7f7f
	w = w&0x007f007f007f007f | w&0x7f007f007f007f00>>1
	w = w&0x00003fff00003fff | w&0x3fff00003fff0000>>2
	return w&0x000000000fffffff | w&0x0fffffff00000000>>4
}

// decodeUvarintBytes is decodeUvarintSlow one byte at a time, for inputs too short to load 8
// or 10 bytes at once.
func decodeUvarintBytes(src []byte) (uint64, int, error) {
	var x uint64
	var s uint
	for i := 0; i < len(src); i++ {
		if i == binary.MaxVarintLen64 {
			return 0, 0, corruptf("varint longer than %d bytes", binary.MaxVarintLen64)
		}
		b := src[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, 0, corruptf("varint overflows 64 bits")
			}
			if b == 0 && i > 0 {
				return 0, 0, corruptf("non-canonical varint of %d bytes", i+1)
			}
			return x | uint64(b)<<s, i + 1, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, 0, corruptf("truncated varint: %d bytes, no terminating byte", len(src))
}

// decodeLen decodes a uvarint length prefix and checks that many bytes follow it.
func decodeLen(src []byte, what string) (int, int, error) {
	l, n, err := decodeUvarint(src)
	if err != nil {
		return 0, 0, fmt.Errorf("%s length: %w", what, err)
	}
	if l > uint64(len(src)-n) {
		return 0, 0, corruptf("%s of %d bytes but only %d bytes remain", what, l, len(src)-n)
	}
	return int(l), n, nil
}

// VarintCodec encodes signed integers as zigzag varints (encoding/binary.AppendVarint): 1 byte
// for -64..63, at most 10 bytes. Decoding a value that does not fit T is ErrCorrupt.
// Spark counterpart: the value encoding of its serializers (Kryo writes varints for ints and
// longs).
type VarintCodec[T Signed] struct{}

// Append implements Codec.
func (VarintCodec[T]) Append(dst []byte, v T) []byte { return binary.AppendVarint(dst, int64(v)) }

// Decode implements Codec.
func (VarintCodec[T]) Decode(src []byte) (T, int, error) {
	u, n, err := decodeUvarint(src)
	if err != nil {
		return 0, 0, err
	}
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	if int64(T(x)) != x {
		return 0, 0, corruptf("varint %d overflows %T", x, T(0))
	}
	return T(x), n, nil
}

// UvarintCodec encodes unsigned integers as varints (encoding/binary.AppendUvarint): 1 byte for
// 0..127, at most 10 bytes. Decoding a value that does not fit T is ErrCorrupt.
// Spark counterpart: the value encoding of its serializers (Kryo writes varints for ints and
// longs).
type UvarintCodec[T Unsigned] struct{}

// Append implements Codec.
func (UvarintCodec[T]) Append(dst []byte, v T) []byte { return binary.AppendUvarint(dst, uint64(v)) }

// Decode implements Codec.
func (UvarintCodec[T]) Decode(src []byte) (T, int, error) {
	u, n, err := decodeUvarint(src)
	if err != nil {
		return 0, 0, err
	}
	if uint64(T(u)) != u {
		return 0, 0, corruptf("uvarint %d overflows %T", u, T(0))
	}
	return T(u), n, nil
}

// Float64Codec encodes a float64 as its 8 IEEE-754 bytes, little-endian (NaN payloads kept).
// Spark counterpart: the value encoding of its serializers (writeDouble).
type Float64Codec struct{}

// Append implements Codec.
func (Float64Codec) Append(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// Decode implements Codec.
func (Float64Codec) Decode(src []byte) (float64, int, error) {
	if len(src) < 8 {
		return 0, 0, corruptf("float64 needs 8 bytes, have %d", len(src))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(src)), 8, nil
}

// Float32Codec encodes a float32 as its 4 IEEE-754 bytes, little-endian (NaN payloads kept).
// Spark counterpart: the value encoding of its serializers (writeFloat).
type Float32Codec struct{}

// Append implements Codec.
func (Float32Codec) Append(dst []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
}

// Decode implements Codec.
func (Float32Codec) Decode(src []byte) (float32, int, error) {
	if len(src) < 4 {
		return 0, 0, corruptf("float32 needs 4 bytes, have %d", len(src))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(src)), 4, nil
}

// BoolCodec encodes a bool as one byte, 0 or 1; any other byte is ErrCorrupt.
// Spark counterpart: the value encoding of its serializers (writeBoolean).
type BoolCodec struct{}

// Append implements Codec.
func (BoolCodec) Append(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// Decode implements Codec.
func (BoolCodec) Decode(src []byte) (bool, int, error) {
	if len(src) < 1 {
		return false, 0, corruptf("bool needs 1 byte, have 0")
	}
	if src[0] > 1 {
		return false, 0, corruptf("bool byte is %#x, want 0 or 1", src[0])
	}
	return src[0] == 1, 1, nil
}

// StringCodec encodes a string as a uvarint length and its bytes. Decode copies: the string owns
// its memory and may be kept (e.g. as a map key) after the source buffer is reused.
// Spark counterpart: the value encoding of its serializers (writeString).
type StringCodec struct{}

// Append implements Codec.
func (StringCodec) Append(dst []byte, v string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(v))), v...)
}

// Decode implements Codec.
func (StringCodec) Decode(src []byte) (string, int, error) {
	l, n, err := decodeLen(src, "string")
	if err != nil {
		return "", 0, err
	}
	return string(src[n : n+l]), n + l, nil
}

// AliasStringCodec has StringCodec's encoding, but Decode returns a string that ALIASES src
// (no copy, no allocation). The string is only valid while src is unchanged: a RecordReader reuses
// its buffer on the next call to Next, after which the string silently changes. Use it for values
// consumed before the next record (comparisons, hashing, writing elsewhere); never keep such a
// string, and never use it as a Go map key (the map stores the aliasing string). Use StringCodec
// for anything kept.
// Spark has no counterpart: JVM deserialization always copies.
type AliasStringCodec struct{}

// Append implements Codec.
func (AliasStringCodec) Append(dst []byte, v string) []byte { return StringCodec{}.Append(dst, v) }

// Decode implements Codec; the result aliases src.
func (AliasStringCodec) Decode(src []byte) (string, int, error) {
	l, n, err := decodeLen(src, "string")
	if err != nil || l == 0 {
		return "", n, err
	}
	return unsafe.String(&src[n], l), n + l, nil
}

// BytesCodec encodes a byte slice as a uvarint length and its bytes. Decode copies (an empty
// slice decodes as nil), so the result may be kept.
// Spark counterpart: the value encoding of its serializers (byte arrays).
type BytesCodec struct{}

// Append implements Codec.
func (BytesCodec) Append(dst []byte, v []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(v))), v...)
}

// Decode implements Codec.
func (BytesCodec) Decode(src []byte) ([]byte, int, error) {
	l, n, err := decodeLen(src, "byte slice")
	if err != nil || l == 0 {
		return nil, n, err
	}
	return bytes.Clone(src[n : n+l]), n + l, nil
}

// AliasBytesCodec has BytesCodec's encoding, but Decode returns a sub-slice of src (capacity
// clipped, so appending to it never writes into src). Like AliasStringCodec the result is only
// valid until the source buffer is reused; copy what you keep.
// Spark has no counterpart: JVM deserialization always copies.
type AliasBytesCodec struct{}

// Append implements Codec.
func (AliasBytesCodec) Append(dst []byte, v []byte) []byte { return BytesCodec{}.Append(dst, v) }

// Decode implements Codec; the result aliases src.
func (AliasBytesCodec) Decode(src []byte) ([]byte, int, error) {
	l, n, err := decodeLen(src, "byte slice")
	if err != nil || l == 0 {
		return nil, n, err
	}
	return src[n : n+l : n+l], n + l, nil
}

// Pair is a key and its value: the records the maps' iterators yield, the (key, combiner) pairs
// that ExternalAppendOnlyMap and ExternalSorter spill, and any two-field record (Spark's Scala
// Tuple2). collection.Pair is this type.
type Pair[K, V any] struct {
	Key   K
	Value V
}

// PairCodec encodes a Pair as its key's encoding followed by its value's (for structs of your
// own, StructCodec is the same idea with one Field per field).
// Spark counterpart: serializing a Scala Tuple2, as spill writers do for (key, value).
type PairCodec[K, V any] struct {
	Key   Codec[K]
	Value Codec[V]
}

// NewPairCodec returns a PairCodec of the two codecs (type arguments are inferred).
func NewPairCodec[K, V any](key Codec[K], value Codec[V]) PairCodec[K, V] {
	return PairCodec[K, V]{Key: key, Value: value}
}

// Append implements Codec.
func (c PairCodec[K, V]) Append(dst []byte, p Pair[K, V]) []byte {
	return c.Value.Append(c.Key.Append(dst, p.Key), p.Value)
}

// Decode implements Codec.
func (c PairCodec[K, V]) Decode(src []byte) (Pair[K, V], int, error) {
	k, n1, err := c.Key.Decode(src)
	if err != nil {
		return Pair[K, V]{}, 0, fmt.Errorf("pair key: %w", err)
	}
	v, n2, err := c.Value.Decode(src[n1:])
	if err != nil {
		return Pair[K, V]{}, 0, fmt.Errorf("pair value at byte %d: %w", n1, err)
	}
	return Pair[K, V]{Key: k, Value: v}, n1 + n2, nil
}

// SliceCodec encodes a []T as a uvarint element count followed by the elements (the combiner of
// groupByKey is such a slice). Decode rejects a count larger than the bytes that follow, so
// elements must encode to at least one byte each (all ready codecs do). An empty slice decodes
// as nil.
// Spark counterpart: serializing an array or collection value (a groupByKey combiner, say).
type SliceCodec[T any] struct {
	Elem Codec[T]
}

// Append implements Codec.
func (c SliceCodec[T]) Append(dst []byte, v []T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, e := range v {
		dst = c.Elem.Append(dst, e)
	}
	return dst
}

// Decode implements Codec.
func (c SliceCodec[T]) Decode(src []byte) ([]T, int, error) {
	count, n, err := decodeLen(src, "slice")
	if err != nil || count == 0 {
		return nil, n, err
	}
	// count is at most the bytes that follow, but an element may take far more memory than
	// its encoding: preallocate at most 64 KiB and let append grow the rest as elements decode.
	var zero T
	out := make([]T, 0, min(count, 64<<10/max(1, int(unsafe.Sizeof(zero)))))
	for i := range count {
		e, m, err := c.Elem.Decode(src[n:])
		if err != nil {
			return nil, 0, fmt.Errorf("slice element %d of %d at byte %d: %w", i, count, n, err)
		}
		out = append(out, e)
		n += m
	}
	return out, n, nil
}

// FuncCodec makes a Codec of two functions, for record types with a hand-written encoding
// (typically a struct encoded field by field with the ready codecs).
// Spark counterpart: a custom Kryo serializer registered for a class.
type FuncCodec[T any] struct {
	AppendFunc func(dst []byte, v T) []byte
	DecodeFunc func(src []byte) (T, int, error)
}

// Append implements Codec.
func (c FuncCodec[T]) Append(dst []byte, v T) []byte { return c.AppendFunc(dst, v) }

// Decode implements Codec.
func (c FuncCodec[T]) Decode(src []byte) (T, int, error) { return c.DecodeFunc(src) }

// GobCodec is the slow path: the fallback for arbitrary types (Spark's JavaSerializer plays this
// part). Each value is encoded with its own encoding/gob stream, prefixed by a uvarint length.
//
// Cost: every record carries gob's type description (tens to hundreds of bytes for a struct) and
// pays for a fresh gob encoder/decoder and reflection, typically microseconds per record, one to
// two orders of magnitude slower and larger than the ready codecs (BenchmarkStructCodec: about
// 13 µs and 180 allocations per 4-field record against 0.15 µs for its StructCodec). Prefer
// NewStructCodec, NewBinaryCodec or composing ready codecs for any record type that is spilled,
// shuffled or cached in bulk. Gob's rules apply: only exported
// fields are kept, interface values need gob.Register, pointers are followed (a nil pointer at
// the top level cannot be encoded). Append panics if gob cannot encode v, which means T is not
// gob-encodable: a programming error. Decoded values never alias src. The encoding is not
// canonical: decoding and re-encoding gives an equal value, not necessarily the same bytes.
type GobCodec[T any] struct{}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Append implements Codec.
func (GobCodec[T]) Append(dst []byte, v T) []byte {
	var w appendWriter
	if err := gob.NewEncoder(&w).Encode(&v); err != nil {
		panic(fmt.Sprintf("storage: GobCodec cannot encode %T: %v", v, err))
	}
	return append(binary.AppendUvarint(dst, uint64(len(w.b))), w.b...)
}

// Decode implements Codec.
func (GobCodec[T]) Decode(src []byte) (T, int, error) {
	var v T
	l, n, err := decodeLen(src, "gob value")
	if err != nil {
		return v, 0, err
	}
	r := bytes.NewReader(src[n : n+l])
	if err := gob.NewDecoder(r).Decode(&v); err != nil {
		var zero T
		return zero, 0, corruptf("gob value of %d bytes: %v", l, err)
	}
	if r.Len() != 0 {
		var zero T
		return zero, 0, corruptf("gob value of %d bytes has %d trailing bytes", l, r.Len())
	}
	return v, n + l, nil
}
