package memory

import "testing"

// FuzzPageAddress checks the address decoders against the encoder: any page number in the table
// and any offset round-trip, with offset bits above 51 dropped like Spark's mask.
func FuzzPageAddress(f *testing.F) {
	f.Add(uint16(0), int64(0))
	f.Add(uint16(PageTableSize-1), int64(-1))
	f.Add(uint16(17), int64(1)<<51+10)
	f.Fuzz(func(t *testing.T, page uint16, offset int64) {
		n := int(page) % PageTableSize
		a := EncodePageNumberAndOffset(n, offset)
		if got := DecodePageNumber(a); got != n {
			t.Fatalf("page %d decoded as %d from %#x", n, got, a)
		}
		if got, want := DecodeOffset(a), offset&offsetMask; got != want {
			t.Fatalf("offset %#x decoded as %#x, want %#x", offset, got, want)
		}
		if DecodeOffset(a) < 0 || DecodeOffset(a) >= 1<<OffsetBits {
			t.Fatalf("offset %#x outside 51 bits", DecodeOffset(a))
		}
	})
}
