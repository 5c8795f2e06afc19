package storage

import (
	"bytes"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sale is the 4-field record of the struct codec tests.
type sale struct {
	Item  string
	Qty   int64
	Price float64
	Paid  bool
}

// saleCodec is sale's codec with NewStructCodec: one line per field.
var saleCodec = NewStructCodec(
	Field(func(s *sale) *string { return &s.Item }, StringCodec{}),
	Field(func(s *sale) *int64 { return &s.Qty }, VarintCodec[int64]{}),
	Field(func(s *sale) *float64 { return &s.Price }, Float64Codec{}),
	Field(func(s *sale) *bool { return &s.Paid }, BoolCodec{}),
)

// handSaleCodec is the same codec written by hand with FuncCodec, as before StructCodec: an
// offset and an error check per field. The tests check both give the same bytes.
var handSaleCodec = FuncCodec[sale]{
	AppendFunc: func(dst []byte, s sale) []byte {
		dst = StringCodec{}.Append(dst, s.Item)
		dst = VarintCodec[int64]{}.Append(dst, s.Qty)
		dst = Float64Codec{}.Append(dst, s.Price)
		return BoolCodec{}.Append(dst, s.Paid)
	},
	DecodeFunc: func(src []byte) (sale, int, error) {
		var s sale
		item, n, err := StringCodec{}.Decode(src)
		if err != nil {
			return sale{}, 0, err
		}
		qty, m, err := VarintCodec[int64]{}.Decode(src[n:])
		if err != nil {
			return sale{}, 0, err
		}
		n += m
		price, m, err := Float64Codec{}.Decode(src[n:])
		if err != nil {
			return sale{}, 0, err
		}
		n += m
		paid, m, err := BoolCodec{}.Decode(src[n:])
		if err != nil {
			return sale{}, 0, err
		}
		s.Item, s.Qty, s.Price, s.Paid = item, qty, price, paid
		return s, n + m, nil
	},
}

var sales = []sale{
	{},
	{Item: "apple", Qty: 3, Price: 0.5, Paid: true},
	{Item: string(make([]byte, 300)), Qty: math.MinInt64, Price: math.Inf(-1)},
}

func TestStructCodec(t *testing.T) {
	roundTrip(t, Codec[sale](saleCodec), sales)
	for _, s := range sales {
		require.Equal(t, handSaleCodec.Append(nil, s), saleCodec.Append(nil, s), "%+v", s)
	}

	type order struct {
		ID    uint32
		Lines []sale
		At    time.Time
	}
	nested := NewStructCodec(
		Field(func(o *order) *uint32 { return &o.ID }, UvarintCodec[uint32]{}),
		Field(func(o *order) *[]sale { return &o.Lines }, SliceCodec[sale]{Elem: saleCodec}),
		Field(func(o *order) *time.Time { return &o.At }, NewBinaryCodec[time.Time]()),
	)
	at := time.Date(2026, 12, 4, 21, 0, 0, 5, time.UTC)
	roundTrip(t, Codec[order](nested), []order{{ID: 7, Lines: sales[1:], At: at}, {At: at}})
}

func TestStructCodecRejects(t *testing.T) {
	good := saleCodec.Append(nil, sale{Item: "x", Qty: 1, Paid: true})
	bad := bytes.Clone(good)
	bad[len(bad)-1] = 7 // the bool
	_, _, err := saleCodec.Decode(bad)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "storage.sale field 3 (bool) of 4 at byte 11: ")
	require.ErrorContains(t, err, "bool byte is 0x7")

	require.PanicsWithValue(t, "storage: Field of storage.sale needs a locator and a codec", func() {
		Field[sale, int64](nil, VarintCodec[int64]{})
	})
	require.PanicsWithValue(t, "storage: NewStructCodec of storage.sale: field 1 was not made by Field", func() {
		NewStructCodec(saleCodec.fields[0], StructField[sale]{})
	})
}

func TestBinaryCodec(t *testing.T) {
	roundTrip(t, Codec[time.Time](NewBinaryCodec[time.Time]()), []time.Time{
		{}, time.Date(2026, 12, 4, 21, 0, 0, 5, time.UTC), time.Unix(1<<40, 0).UTC(),
	})
	roundTrip(t, Codec[netip.Addr](NewBinaryCodec[netip.Addr]()), []netip.Addr{
		{}, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1"),
	})
	// An encoding longer than 127 bytes takes a 2-byte length.
	long := bigText(bytes.Repeat([]byte{'z'}, 200))
	enc := NewBinaryCodec[bigText]().Append([]byte{0xee}, long)
	require.Equal(t, []byte{0xee, 0xc8, 0x01}, enc[:3], "the prefix kept, then the length")
	roundTrip(t, Codec[bigText](NewBinaryCodec[bigText]()), []bigText{nil, long, {1}})

	_, _, err := NewBinaryCodec[netip.Addr]().Decode([]byte{3, 1, 2, 3})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "netip.Addr value of 3 bytes")
	_, _, err = NewBinaryCodec[netip.Addr]().Decode([]byte{3, 1})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "netip.Addr: ")

	require.PanicsWithValue(t, "storage: BinaryCodec cannot encode storage.bigText: bigText: too long", func() {
		NewBinaryCodec[bigText]().Append(nil, make(bigText, 1<<10))
	})
}

// bigText implements the binary interfaces as the bytes themselves, and refuses 1 KiB or more.
type bigText []byte

func (b bigText) AppendBinary(dst []byte) ([]byte, error) {
	if len(b) >= 1<<10 {
		return dst, errTooLong
	}
	return append(dst, b...), nil
}

func (b *bigText) UnmarshalBinary(data []byte) error {
	if len(data) == 0 {
		*b = nil
		return nil
	}
	*b = bytes.Clone(data)
	return nil
}

var errTooLong = errorString("bigText: too long")

type errorString string

func (e errorString) Error() string { return string(e) }

// FuzzStructAndBinaryCodecs: arbitrary bytes never panic the struct and binary decoders, and what
// decodes re-encodes identically (time.Time's encoding keeps the zone offset and is canonical
// for what decodes; netip.Addr's is canonical).
func FuzzStructAndBinaryCodecs(f *testing.F) {
	f.Add([]byte{})
	for _, s := range sales {
		f.Add(saleCodec.Append(nil, s))
	}
	f.Add(NewBinaryCodec[time.Time]().Append(nil, time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600))))
	f.Add(NewBinaryCodec[netip.Addr]().Append(nil, netip.MustParseAddr("::ffff:1.2.3.4")))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCanonical(t, "struct", Codec[sale](saleCodec), data)
		checkCanonical(t, "netip.Addr", Codec[netip.Addr](NewBinaryCodec[netip.Addr]()), data)
		checkCanonical(t, "bigText", Codec[bigText](NewBinaryCodec[bigText]()), data)
		c := NewBinaryCodec[time.Time]()
		v, _, err := c.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		v2, _, err := c.Decode(c.Append(nil, v))
		require.NoError(t, err)
		require.True(t, v.Equal(v2), "%v re-decodes as %v", v, v2)
	})
}

func BenchmarkStructCodec(b *testing.B) {
	s := sale{Item: "apple-pie", Qty: 12, Price: 3.25, Paid: true}
	for _, bc := range []struct {
		name string
		c    Codec[sale]
	}{{"StructCodec", saleCodec}, {"hand-written", handSaleCodec}, {"gob", GobCodec[sale]{}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = bc.c.Append(buf[:0], s)
				if _, _, err := bc.c.Decode(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
