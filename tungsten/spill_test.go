package tungsten

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

// A keyed spill record is a key-value record alone: its prefix is its key's, and a record whose
// key length does not fit it is storage.ErrCorrupt.
func TestDecodeKeyedRecord(t *testing.T) {
	kv := func(klen uint32, rest string) []byte {
		rec := make([]byte, uao, uao+len(rest))
		order.PutUint32(rec, klen)
		return append(rec, rest...)
	}
	for _, tc := range []struct {
		name    string
		rec     []byte
		prefix  int64
		corrupt bool
	}{
		{"key and value", kv(17, "user-100000123456\x80\x00\x00\x00\x00\x00\x00\x07"), BytesPrefix([]byte("user-100")), false},
		{"short key", kv(3, "abc\xff\xff\xff\xff\xff\xff\xff\xff"), BytesPrefix([]byte("abc")), false},
		{"short key at the end", kv(3, "abc"), BytesPrefix([]byte("abc")), false},
		{"empty key", kv(0, "\x01"), 0, false},
		{"shorter than a key length", []byte{1, 0}, 0, true},
		{"key past the end", kv(4, "abc"), 0, true},
		{"dead key", kv(3|deadKey, "abc"), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix, data, err := decodeKeyedRecord(tc.rec)
			if tc.corrupt {
				require.ErrorIs(t, err, storage.ErrCorrupt)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.prefix, prefix)
			require.Equal(t, tc.rec, data)
		})
	}
}
