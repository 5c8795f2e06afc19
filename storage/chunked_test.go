package storage

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChunkedWriterAndBuffer(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range []struct{ chunk, total int }{{16, 0}, {16, 1}, {16, 16}, {16, 17}, {7, 1000}, {4096, 100}} {
		w := NewChunkedWriter(tc.chunk)
		var want []byte
		for len(want) < tc.total {
			p := make([]byte, min(rng.IntN(40)+1, tc.total-len(want)))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			n, err := w.Write(p)
			require.NoError(t, err)
			require.Equal(t, len(p), n)
			want = append(want, p...)
		}
		require.Equal(t, int64(tc.total), w.Size())
		require.GreaterOrEqual(t, w.Allocated(), w.Size())
		b := w.Finish()
		_, err := w.Write([]byte{1})
		require.Error(t, err)
		require.Equal(t, int64(tc.total), b.Size())
		for _, c := range b.Chunks() {
			require.LessOrEqual(t, len(c), tc.chunk)
		}
		require.LessOrEqual(t, b.Allocated(), b.Size()+int64(tc.chunk), "at most one partly used chunk")
		got, err := io.ReadAll(b.Reader())
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got))
		var buf bytes.Buffer
		n, err := b.WriteTo(&buf)
		require.NoError(t, err)
		require.Equal(t, int64(tc.total), n)
		require.True(t, bytes.Equal(want, buf.Bytes()))
		one, err := b.Bytes(int64(tc.total))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, one))
		if tc.total > 0 {
			_, err = b.Bytes(int64(tc.total - 1))
			require.ErrorIs(t, err, ErrTooLarge)
			require.ErrorContains(t, err, "exceeds the limit")
		}
		b.Dispose()
		b.Dispose()
		require.Panics(t, func() { b.Reader() })
	}
}

func TestChunkedReaderSmallReads(t *testing.T) {
	b := NewChunkedBuffer([]byte("ab"), nil, []byte("cde"))
	require.Len(t, b.Chunks(), 2)
	r := b.Reader()
	var got []byte
	p := make([]byte, 2)
	for {
		n, err := r.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.Equal(t, "abcde", string(got))
}
