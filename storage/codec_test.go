package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// roundTrip encodes vals back to back into one buffer, decodes them in order, and checks values,
// consumed sizes and that every strict prefix of each encoding is ErrCorrupt (self-delimiting).
func roundTrip[T any](t *testing.T, c Codec[T], vals []T) {
	t.Helper()
	var buf []byte
	var ends []int
	for _, v := range vals {
		buf = c.Append(buf, v)
		ends = append(ends, len(buf))
	}
	off := 0
	for i, want := range vals {
		got, n, err := c.Decode(buf[off:])
		require.NoError(t, err, "value %d", i)
		require.Equal(t, ends[i]-off, n, "value %d consumed", i)
		require.Equal(t, want, got, "value %d", i)
		for cut := off; cut < ends[i]; cut++ {
			_, _, err := c.Decode(buf[off:cut])
			require.ErrorIs(t, err, ErrCorrupt, "value %d cut to %d bytes", i, cut-off)
		}
		off += n
	}
	require.Equal(t, len(buf), off)
}

type gobRecord struct {
	Name  string
	Count int64
	Tags  map[string]float64
}

func TestCodecRoundTrips(t *testing.T) {
	t.Run("int64", func(t *testing.T) {
		roundTrip[int64](t, VarintCodec[int64]{}, []int64{0, 1, -1, 63, -64, 64, math.MaxInt64, math.MinInt64})
	})
	t.Run("int8", func(t *testing.T) { roundTrip[int8](t, VarintCodec[int8]{}, []int8{0, 127, -128}) })
	t.Run("int", func(t *testing.T) { roundTrip[int](t, VarintCodec[int]{}, []int{0, math.MaxInt, math.MinInt}) })
	t.Run("int16", func(t *testing.T) { roundTrip[int16](t, VarintCodec[int16]{}, []int16{math.MaxInt16, math.MinInt16}) })
	t.Run("int32", func(t *testing.T) { roundTrip[int32](t, VarintCodec[int32]{}, []int32{math.MaxInt32, math.MinInt32}) })
	t.Run("uint64", func(t *testing.T) {
		roundTrip[uint64](t, UvarintCodec[uint64]{}, []uint64{0, 127, 128, math.MaxUint64})
	})
	t.Run("uint8", func(t *testing.T) { roundTrip[uint8](t, UvarintCodec[uint8]{}, []uint8{0, 255}) })
	t.Run("uint/uint16/uint32/uintptr", func(t *testing.T) {
		roundTrip[uint](t, UvarintCodec[uint]{}, []uint{0, math.MaxUint})
		roundTrip[uint16](t, UvarintCodec[uint16]{}, []uint16{math.MaxUint16})
		roundTrip[uint32](t, UvarintCodec[uint32]{}, []uint32{math.MaxUint32})
		roundTrip[uintptr](t, UvarintCodec[uintptr]{}, []uintptr{1 << 20})
	})
	t.Run("float64", func(t *testing.T) {
		roundTrip[float64](t, Float64Codec{}, []float64{0, -0.5, math.Inf(1), math.MaxFloat64, math.SmallestNonzeroFloat64})
	})
	t.Run("float32", func(t *testing.T) { roundTrip[float32](t, Float32Codec{}, []float32{0, 1.5, math.MaxFloat32}) })
	t.Run("bool", func(t *testing.T) { roundTrip[bool](t, BoolCodec{}, []bool{true, false}) })
	t.Run("string", func(t *testing.T) {
		roundTrip[string](t, StringCodec{}, []string{"", "a", string(make([]byte, 300)), "héllo"})
	})
	t.Run("alias string", func(t *testing.T) { roundTrip[string](t, AliasStringCodec{}, []string{"", "abc"}) })
	t.Run("bytes", func(t *testing.T) {
		roundTrip[[]byte](t, BytesCodec{}, [][]byte{nil, {1}, bytes.Repeat([]byte{7}, 200)})
	})
	t.Run("alias bytes", func(t *testing.T) { roundTrip[[]byte](t, AliasBytesCodec{}, [][]byte{nil, {1, 2}}) })
	t.Run("pair", func(t *testing.T) {
		c := NewPairCodec[int64, string](VarintCodec[int64]{}, StringCodec{})
		roundTrip[Pair[int64, string]](t, c, []Pair[int64, string]{{-5, "x"}, {0, ""}, {1 << 40, "long"}})
	})
	t.Run("nested pair of slice", func(t *testing.T) {
		c := NewPairCodec[string, []int32](StringCodec{}, SliceCodec[int32]{Elem: VarintCodec[int32]{}})
		roundTrip[Pair[string, []int32]](t, c, []Pair[string, []int32]{{"k", []int32{1, -2, 3}}, {"", nil}})
	})
	t.Run("func codec", func(t *testing.T) {
		type point struct{ X, Y float64 }
		c := FuncCodec[point]{
			AppendFunc: func(dst []byte, p point) []byte {
				return Float64Codec{}.Append(Float64Codec{}.Append(dst, p.X), p.Y)
			},
			DecodeFunc: func(src []byte) (point, int, error) {
				p, n, err := NewPairCodec[float64, float64](Float64Codec{}, Float64Codec{}).Decode(src)
				return point{p.Key, p.Value}, n, err
			},
		}
		roundTrip[point](t, c, []point{{1, 2}, {-3, 0}})
	})
	t.Run("gob", func(t *testing.T) {
		roundTrip[gobRecord](t, GobCodec[gobRecord]{}, []gobRecord{
			{Name: "a", Count: 3, Tags: map[string]float64{"x": 1.5}},
			{Name: "b", Count: -1},
		})
	})
}

func TestAliasingCodecsShareTheBuffer(t *testing.T) {
	buf := StringCodec{}.Append(nil, "abc")
	copied, _, err := StringCodec{}.Decode(buf)
	require.NoError(t, err)
	aliased, _, err := AliasStringCodec{}.Decode(buf)
	require.NoError(t, err)
	b, _, err := AliasBytesCodec{}.Decode(buf)
	require.NoError(t, err)
	require.Equal(t, 3, cap(b), "capacity clipped")
	buf[1] = 'X' // the reader reuses its buffer
	require.Equal(t, "abc", copied)
	require.Equal(t, "Xbc", aliased, "AliasStringCodec aliases, as documented")
	require.Equal(t, []byte("Xbc"), b)
}

func TestCodecRejects(t *testing.T) {
	tests := []struct {
		name string
		dec  func([]byte) error
		in   []byte
		msg  string
	}{
		{"int8 overflow", decErr(VarintCodec[int8]{}), VarintCodec[int64]{}.Append(nil, 300), "overflows int8"},
		{"uint16 overflow", decErr(UvarintCodec[uint16]{}), UvarintCodec[uint64]{}.Append(nil, 1<<20), "overflows uint16"},
		{"non-canonical varint", decErr(UvarintCodec[uint64]{}), []byte{0x80, 0x00}, "non-canonical"},
		{"11-byte varint", decErr(UvarintCodec[uint64]{}), bytes.Repeat([]byte{0xff}, 11), "longer than 10"},
		{"varint > 64 bits", decErr(UvarintCodec[uint64]{}), append(bytes.Repeat([]byte{0xff}, 9), 2), "overflows 64 bits"},
		{"empty", decErr(VarintCodec[int64]{}), nil, "truncated varint"},
		{"bool 2", decErr(BoolCodec{}), []byte{2}, "want 0 or 1"},
		{"string too long", decErr(StringCodec{}), []byte{5, 'a'}, "string of 5 bytes but only 1 bytes remain"},
		{"slice count", decErr(SliceCodec[bool]{Elem: BoolCodec{}}), []byte{3, 1, 1}, "slice of 3 bytes but only 2"},
		{"slice elem", decErr(SliceCodec[bool]{Elem: BoolCodec{}}), []byte{2, 1, 9}, "slice element 1 of 2 at byte 2"},
		{"gob garbage", decErr(GobCodec[gobRecord]{}), []byte{3, 1, 2, 3}, "gob value of 3 bytes"},
		{"pair value", decErr(NewPairCodec[bool, bool](BoolCodec{}, BoolCodec{})), []byte{1}, "pair value at byte 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dec(tt.in)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

// A slice's count is checked against the bytes that follow, not against the memory its elements
// take: decoding a count of large elements must not allocate them all before they decode.
func TestSliceCodecBoundsPreallocation(t *testing.T) {
	type big [4096]byte
	elem := FuncCodec[big]{DecodeFunc: func(src []byte) (big, int, error) {
		if len(src) == 0 || src[0] != 1 {
			return big{}, 0, corruptf("not an element")
		}
		return big{}, 1, nil
	}}
	src := append(binary.AppendUvarint(nil, 1<<16), make([]byte, 1<<16)...) // 64 Ki elements claimed
	src[3] = 1                                                              // one decodes
	var err error
	alloc := totalAlloc(func() { _, _, err = SliceCodec[big]{Elem: elem}.Decode(src) })
	require.ErrorContains(t, err, "slice element 1 of 65536 at byte 4")
	require.Less(t, alloc, uint64(1<<20), "256 MiB of elements claimed")
}

func decErr[T any](c Codec[T]) func([]byte) error {
	return func(b []byte) error { _, _, err := c.Decode(b); return err }
}

func TestGobCodecPanicsOnUnencodableType(t *testing.T) {
	require.PanicsWithValue(t, "storage: GobCodec cannot encode func(): gob NewTypeObject can't handle type: func()", func() {
		GobCodec[func()]{}.Append(nil, func() {})
	})
}

// checkCanonical decodes data with c; whatever decodes must re-encode to exactly the bytes consumed.
func checkCanonical[T any](t *testing.T, name string, c Codec[T], data []byte) {
	v, n, err := c.Decode(data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: error %v does not wrap ErrCorrupt", name, err)
		}
		return
	}
	if n < 0 || n > len(data) {
		t.Fatalf("%s: consumed %d of %d bytes", name, n, len(data))
	}
	if re := c.Append(nil, v); !bytes.Equal(re, data[:n]) {
		t.Fatalf("%s: decoded %v from %x, re-encodes to %x", name, v, data[:n], re)
	}
}

// FuzzCodecs: arbitrary bytes never panic any decoder; what decodes re-encodes identically (gob,
// whose encoding is not canonical, re-decodes to an equal value instead).
func FuzzCodecs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x01, 0x03, 'a', 'b', 'c'})
	f.Add(NewPairCodec[string, []int64](StringCodec{}, SliceCodec[int64]{Elem: VarintCodec[int64]{}}).
		Append(nil, Pair[string, []int64]{"key", []int64{1, -1, 1 << 50}}))
	f.Add(GobCodec[gobRecord]{}.Append(nil, gobRecord{Name: "n", Count: 1, Tags: map[string]float64{"t": 2}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCanonical[int64](t, "int64", VarintCodec[int64]{}, data)
		checkCanonical[int8](t, "int8", VarintCodec[int8]{}, data)
		checkCanonical[int32](t, "int32", VarintCodec[int32]{}, data)
		checkCanonical[uint64](t, "uint64", UvarintCodec[uint64]{}, data)
		checkCanonical[uint16](t, "uint16", UvarintCodec[uint16]{}, data)
		checkCanonical[float64](t, "float64", Float64Codec{}, data)
		checkCanonical[float32](t, "float32", Float32Codec{}, data)
		checkCanonical[bool](t, "bool", BoolCodec{}, data)
		checkCanonical[string](t, "string", StringCodec{}, data)
		checkCanonical[string](t, "alias string", AliasStringCodec{}, data)
		checkCanonical[[]byte](t, "bytes", BytesCodec{}, data)
		checkCanonical[[]byte](t, "alias bytes", AliasBytesCodec{}, data)
		checkCanonical[Pair[string, []int64]](t, "pair", NewPairCodec[string, []int64](StringCodec{}, SliceCodec[int64]{Elem: VarintCodec[int64]{}}), data)
		checkCanonical[[]bool](t, "slice", SliceCodec[bool]{Elem: BoolCodec{}}, data)

		g := GobCodec[gobRecord]{}
		v, _, err := g.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		v2, _, err := g.Decode(g.Append(nil, v))
		require.NoError(t, err)
		require.Equal(t, v, v2)
	})
}

// TestUvarintWordDecoder checks decodeUvarintSlow (which reads 8 or 10 bytes at once) against
// decodeUvarintBytes (one byte at a time) on every varint length, on non-canonical, overlong and
// overflowing inputs, and on random bytes, with the varint followed by other bytes or not.
func TestUvarintWordDecoder(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	var inputs [][]byte
	for shift := range 64 {
		for _, v := range []uint64{1 << shift, 1<<shift - 1, 1<<shift | rng.Uint64()>>(63-shift)} {
			inputs = append(inputs, binary.AppendUvarint(nil, v))
		}
	}
	for n := 1; n <= 11; n++ {
		b := bytes.Repeat([]byte{0x80}, n)
		b[n-1] = 0 // non-canonical when n > 1
		inputs = append(inputs, b, bytes.Repeat([]byte{0xff}, n), append(bytes.Repeat([]byte{0xff}, n-1), 2))
	}
	for range 10000 {
		b := make([]byte, rng.IntN(13))
		for i := range b {
			b[i] = byte(rng.Uint32())
			if rng.IntN(4) != 0 {
				b[i] |= 0x80
			}
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		for _, tail := range [][]byte{nil, {0x01, 0xff, 0x80, 0x7f, 0, 0, 0, 0, 0, 0}} {
			src := append(append([]byte{}, in...), tail...)
			wx, wn, werr := decodeUvarintSlow(src)
			bx, bn, berr := decodeUvarintBytes(src)
			require.Equal(t, bx, wx, "value of %x", src)
			require.Equal(t, bn, wn, "length of %x", src)
			if berr == nil {
				require.NoError(t, werr, "%x", src)
			} else {
				require.EqualError(t, werr, berr.Error(), "%x", src)
			}
		}
	}
}
