package tungsten

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

// A record of an inline run decodes to the page-format record of its pair, or to
// storage.ErrCorrupt when it is not 16 bytes.
func FuzzInlineSpillRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 2, 3})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var buf [inlineRecordBytes]byte
		prefix, data, err := decodeInlineSpillRecord(rec, &buf)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			require.NotEqual(t, 16, len(rec))
			return
		}
		require.Equal(t, int64(binary.BigEndian.Uint64(rec)), prefix)
		k, v, err := splitKV(data)
		require.NoError(t, err)
		require.Equal(t, rec[:8], k)
		require.Equal(t, rec[8:], v)
	})
}
