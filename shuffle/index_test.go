package shuffle

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

func TestIndexRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lengths []int64
	}{
		{"one partition", []int64{10}},
		{"one empty partition", []int64{0}},
		{"empty partitions between", []int64{0, 5, 0, 0, 7, 0}},
		{"all empty", []int64{0, 0, 0}},
		{"large", []int64{1 << 40, 3, 1 << 33}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var total int64
			for _, l := range tc.lengths {
				total += l
			}
			b := encodeIndex(tc.lengths)
			require.Len(t, b, 8*(len(tc.lengths)+1))
			offsets, err := decodeIndex(b, len(tc.lengths), total)
			require.NoError(t, err)
			require.Zero(t, offsets[0])
			for p, l := range tc.lengths {
				require.Equal(t, l, offsets[p+1]-offsets[p], "partition %d", p)
			}
		})
	}
}

func TestDecodeIndexCorrupt(t *testing.T) {
	valid := encodeIndex([]int64{4, 0, 6})
	put := func(i int, v int64) []byte {
		b := append([]byte(nil), valid...)
		binary.BigEndian.PutUint64(b[8*i:], uint64(v))
		return b
	}
	for _, tc := range []struct {
		name       string
		b          []byte
		partitions int
		dataLen    int64
	}{
		{"truncated", valid[:len(valid)-1], 3, 10},
		{"too long", append(append([]byte(nil), valid...), 0), 3, 10},
		{"fewer partitions than expected", valid, 4, 10},
		{"empty", nil, 3, 10},
		{"first offset not zero", put(0, 1), 3, 10},
		{"offsets decrease", put(2, 3), 3, 10},
		{"negative offset", put(1, -1), 3, 10},
		{"last offset below data length", valid, 3, 11},
		{"last offset beyond data length", valid, 3, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeIndex(tc.b, tc.partitions, tc.dataLen)
			require.ErrorIs(t, err, storage.ErrCorrupt)
		})
	}
}

// FuzzDecodeIndex checks that decodeIndex never panics and that what it accepts is a valid
// index: offsets from 0, never decreasing, ending at the data length.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex([]int64{4, 0, 6}), 3, int64(10))
	f.Add(encodeIndex([]int64{0}), 1, int64(0))
	f.Add([]byte{1, 2, 3}, 1, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, partitions int, dataLen int64) {
		if partitions < 1 || partitions > 1<<16 {
			return
		}
		offsets, err := decodeIndex(b, partitions, dataLen)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			return
		}
		require.Len(t, offsets, partitions+1)
		require.Zero(t, offsets[0])
		for i := 1; i < len(offsets); i++ {
			require.GreaterOrEqual(t, offsets[i], offsets[i-1])
		}
		require.Equal(t, dataLen, offsets[partitions])
	})
}
