package storage_test

import (
	"fmt"
	"log"
	"time"

	"github.com/spillway/spillway/storage"
)

// A codec for a struct of your own: one Field per field, no offsets, no error checks.
func ExampleNewStructCodec() {
	type sale struct {
		Item  string
		Qty   int64
		Price float64
		At    time.Time
	}
	codec := storage.NewStructCodec(
		storage.Field(func(s *sale) *string { return &s.Item }, storage.StringCodec{}),
		storage.Field(func(s *sale) *int64 { return &s.Qty }, storage.VarintCodec[int64]{}),
		storage.Field(func(s *sale) *float64 { return &s.Price }, storage.Float64Codec{}),
		storage.Field(func(s *sale) *time.Time { return &s.At }, storage.NewBinaryCodec[time.Time]()),
	)

	in := sale{Item: "pear", Qty: 3, Price: 0.75, At: time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)}
	buf := codec.Append(nil, in)
	out, n, err := codec.Decode(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out == in, n == len(buf))

	_, _, err = codec.Decode(buf[:7]) // truncated
	fmt.Println(err)
	// Output:
	// true true
	// storage_test.sale field 2 (float64) of 4 at byte 6: storage: corrupt data: float64 needs 8 bytes, have 1
}

// Any type that implements encoding.BinaryAppender and encoding.BinaryUnmarshaler has a codec
// without code: here time.Time.
func ExampleNewBinaryCodec() {
	codec := storage.NewBinaryCodec[time.Time]()
	t := time.Date(2026, 12, 4, 21, 0, 0, 0, time.FixedZone("CET", 3600))
	buf := codec.Append(nil, t)
	got, _, err := codec.Decode(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Equal(t), len(buf), "bytes")
	// Output: true 16 bytes
}
