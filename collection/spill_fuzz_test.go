package collection

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

// writeRawSpill writes recs as the records of a new spill file of scope.
func writeRawSpill(t testing.TB, scope *storage.Scope, recs ...[]byte) spillFile {
	t.Helper()
	w, err := newSpillWriter(scope, scope.CreateTempLocal, SpillConfig{}.withDefaults(), rawCodec{})
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, w.Write(r))
	}
	f, err := w.Commit()
	require.NoError(t, err)
	return f
}

// FuzzGroupSpillRecord feeds arbitrary bytes as a record of a grouping spill file (key, value
// count, values) to the grouper's reader: it never panics, and a record it reads to the end
// without error re-encodes to the same bytes.
func FuzzGroupSpillRecord(f *testing.F) {
	vals := func(vs ...int) []byte {
		var b []byte
		for _, v := range vs {
			b = intCodec.Append(b, v)
		}
		return b
	}
	key := intCodec.Append(nil, 7)
	f.Add(appendGroupRecord(nil, key, 3, vals(1, -2, 300)))
	f.Add(appendGroupRecord(nil, key, 0, nil))
	f.Add(appendGroupRecord(nil, key, 1, vals(1, 2)))      // bytes after the values
	f.Add(appendGroupRecord(nil, key, 3, vals(1)))         // values missing
	f.Add(append(append([]byte{}, key...), 0x80, 0x00))    // non-canonical count
	f.Add(append(append([]byte{}, key...), 0xff, 0xff, 1)) // huge count
	f.Add([]byte{})
	g := newIntGrouper(f, 1<<20, ExternalMapConfig[int]{})
	scope := newTestScope(f, nil)
	f.Fuzz(func(t *testing.T, rec []byte) {
		file := writeRawSpill(t, scope, rec)
		raw, err := openRawSpill(scope, file, nil)
		require.NoError(t, err)
		src := &diskGroupSource[int, int]{g: g, r: raw}
		defer func() { require.NoError(t, src.close()) }()
		if !src.advance() {
			require.Error(t, src.err(), "a record that is not a key")
			return
		}
		var got []int
		for {
			v, ok := src.nextValue()
			if !ok {
				break
			}
			got = append(got, v)
		}
		if src.err() != nil {
			return
		}
		require.False(t, src.advance(), "one record holds one key")
		require.NoError(t, src.err())
		_, _, k := src.head()
		re := appendGroupRecord(nil, intCodec.Append(nil, k), len(got), vals(got...))
		require.True(t, bytes.Equal(rec, re), "record %x decodes to key %d, values %v, which encode to %x", rec, k, got, re)
	})
}

// FuzzMapSpillRecord feeds arbitrary bytes to the decoder of ExternalAppendOnlyMap's spill
// records (hash, key, combiner) and to its spill reader: they never panic, what the decoder
// accepts re-encodes to the bytes it consumed, and the reader accepts a record exactly when the
// decoder consumes all of it.
func FuzzMapSpillRecord(f *testing.F) {
	c := slotCodec[string, []int]{storage.StringCodec{}, intsCodec}
	f.Add(c.Append(nil, slot[string, []int]{hash: 0x0123456789abcdef, key: "key", val: []int{1, -2, 3}}))
	f.Add(c.Append(nil, slot[string, []int]{hash: 1}))
	f.Add(append(c.Append(nil, slot[string, []int]{hash: 2, key: "k", val: []int{1}}), 0))
	f.Add(c.Append(nil, slot[string, []int]{}))      // hash 0
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0x05, 'a'}) // key cut short
	f.Add([]byte{1, 2, 3})                           // hash cut short
	f.Add([]byte{})
	scope := newTestScope(f, nil)
	f.Fuzz(func(t *testing.T, rec []byte) {
		p, n, err := c.Decode(rec)
		if err == nil {
			require.LessOrEqual(t, n, len(rec))
			require.NotZero(t, p.hash)
			require.Equal(t, rec[:n], c.Append(nil, p), "decoded %+v", p)
		}
		r, oerr := openSpill(scope, writeRawSpill(t, scope, rec), c, nil, nil)
		require.NoError(t, oerr)
		defer func() { require.NoError(t, r.Close()) }()
		ok := r.Next()
		require.Equal(t, err == nil && n == len(rec), ok, "reader and decoder disagree: %v", r.Err())
		if ok {
			require.Equal(t, p, r.Value())
			require.False(t, r.Next())
			require.NoError(t, r.Err())
		} else {
			require.ErrorIs(t, r.Err(), storage.ErrCorrupt)
		}
	})
}
