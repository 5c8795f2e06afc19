package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/spillway/spillway/memory"
)

// DefaultChunkSize is the chunk size used when none is given: 4 MiB.
const DefaultChunkSize = 4 << 20

// ErrTooLarge is returned by ChunkedBuffer.Bytes for a buffer above the caller's limit.
var ErrTooLarge = errors.New("storage: buffer too large for one slice")

// ChunkedBuffer is Spark's ChunkedByteBuffer: the bytes of a block as a list of chunks, so that
// no single slice limits a block's size (SPARK-1476, SPARK-6235) and no block needs one huge
// allocation. Chunks are read-only once in a ChunkedBuffer. Dispose drops them. Not safe for
// concurrent use with Dispose; concurrent readers are fine.
type ChunkedBuffer struct {
	chunks   [][]byte
	size     int64
	pages    []*memory.Page // off-heap pages the chunks view (copyOffHeap), freed by Dispose
	disposed bool
}

// NewChunkedBuffer returns a buffer over the given chunks (not copied; empty chunks dropped).
func NewChunkedBuffer(chunks ...[]byte) *ChunkedBuffer {
	b := &ChunkedBuffer{}
	for _, c := range chunks {
		if len(c) > 0 {
			b.chunks = append(b.chunks, c)
			b.size += int64(len(c))
		}
	}
	return b
}

func (b *ChunkedBuffer) check() {
	if b.disposed {
		panic("storage: ChunkedBuffer used after Dispose")
	}
}

// Size returns the number of bytes (Spark's size).
func (b *ChunkedBuffer) Size() int64 { return b.size }

// Allocated returns the bytes of memory the chunks hold (their capacities), at least Size; this
// is what a memory store accounts for the block.
func (b *ChunkedBuffer) Allocated() int64 {
	var a int64
	for _, c := range b.chunks {
		a += int64(cap(c))
	}
	return a
}

// Chunks returns the chunks; they must not be modified.
func (b *ChunkedBuffer) Chunks() [][]byte {
	b.check()
	return b.chunks
}

// Reader returns a reader of the bytes from the start (Spark's toInputStream); each call gives an
// independent reader. It implements io.WriterTo, so io.Copy writes chunk by chunk.
func (b *ChunkedBuffer) Reader() io.Reader {
	b.check()
	return &chunkedReader{chunks: b.chunks}
}

// WriteTo writes all bytes to w, chunk by chunk (Spark's writeFully).
func (b *ChunkedBuffer) WriteTo(w io.Writer) (int64, error) {
	b.check()
	return (&chunkedReader{chunks: b.chunks}).WriteTo(w)
}

// Bytes returns the bytes as one slice (Spark's toArray): the only chunk itself if there is one,
// else a copy. A buffer larger than limit bytes is ErrTooLarge, so callers state how large a
// single allocation they accept.
func (b *ChunkedBuffer) Bytes(limit int64) ([]byte, error) {
	b.check()
	if b.size > limit {
		return nil, fmt.Errorf("%w: buffer size (%d bytes) exceeds the limit (%d bytes)", ErrTooLarge, b.size, limit)
	}
	if len(b.chunks) == 1 {
		return b.chunks[0], nil
	}
	out := make([]byte, 0, b.size)
	for _, c := range b.chunks {
		out = append(out, c...)
	}
	return out, nil
}

// Dispose drops the chunks so the garbage collector can reclaim them, and unmaps the off-heap
// pages of a buffer that has them (Spark frees direct buffers). It is idempotent; other methods
// except Size panic afterwards.
func (b *ChunkedBuffer) Dispose() {
	for _, p := range b.pages {
		p.Free()
	}
	b.chunks, b.pages, b.disposed = nil, nil, true
}

// maxOffHeapPage bounds the pages copyOffHeap maps (1 GiB).
const maxOffHeapPage = 1 << 30

// copyOffHeap copies the bytes into off-heap pages (memory.NewPage in memory.OffHeap mode:
// anonymous mappings outside the Go heap, of at most maxOffHeapPage bytes each) and returns a
// buffer whose chunks view them, which Dispose unmaps (Spark's
// bytes.copy(Platform.allocateDirectBuffer) for an OFF_HEAP block). b is left as it is.
func (b *ChunkedBuffer) copyOffHeap() (*ChunkedBuffer, error) {
	b.check()
	out := &ChunkedBuffer{size: b.size}
	var free []byte // the unfilled part of the last page
	var mapped int64
	for _, c := range b.chunks {
		for len(c) > 0 {
			if len(free) == 0 {
				p, err := memory.NewPage(memory.OffHeap, min(b.size-mapped, maxOffHeapPage))
				if err != nil {
					out.Dispose()
					return nil, err
				}
				mapped += p.Size()
				out.pages = append(out.pages, p)
				out.chunks = append(out.chunks, p.Bytes()[:0])
				free = p.Bytes()
			}
			n := copy(free, c)
			last := &out.chunks[len(out.chunks)-1]
			*last = (*last)[:len(*last)+n]
			free, c = free[n:], c[n:]
		}
	}
	return out, nil
}

type chunkedReader struct {
	chunks [][]byte
	off    int // in chunks[0]
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0][r.off:])
	r.advance(n)
	return n, nil
}

func (r *chunkedReader) advance(n int) {
	r.off += n
	if r.off == len(r.chunks[0]) {
		r.chunks, r.off = r.chunks[1:], 0
	}
}

func (r *chunkedReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for len(r.chunks) > 0 {
		n, err := w.Write(r.chunks[0][r.off:])
		total += int64(n)
		r.advance(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ChunkedWriter is Spark's ChunkedByteBufferOutputStream: an io.Writer that appends into chunks
// of a fixed size, allocating one chunk at a time. Allocated reports the bytes it holds, which is
// what a caller accounts as memory. Not safe for concurrent use.
type ChunkedWriter struct {
	chunkSize int
	chunks    [][]byte
	size      int64
	done      bool
}

// NewChunkedWriter returns a writer with the given chunk size (≤ 0 means DefaultChunkSize).
func NewChunkedWriter(chunkSize int) *ChunkedWriter {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	return &ChunkedWriter{chunkSize: chunkSize}
}

// Write appends p; it never fails before Finish.
func (w *ChunkedWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("storage: ChunkedWriter written after Finish")
	}
	n := len(p)
	for len(p) > 0 {
		last := len(w.chunks) - 1
		if last < 0 || len(w.chunks[last]) == cap(w.chunks[last]) {
			w.chunks = append(w.chunks, make([]byte, 0, w.chunkSize))
			last++
		}
		c := w.chunks[last]
		k := min(len(p), cap(c)-len(c))
		w.chunks[last] = append(c, p[:k]...)
		p = p[k:]
	}
	w.size += int64(n)
	return n, nil
}

// Size returns the bytes written.
func (w *ChunkedWriter) Size() int64 { return w.size }

// Allocated returns the bytes of chunk memory the writer holds (at least Size).
func (w *ChunkedWriter) Allocated() int64 { return (&ChunkedBuffer{chunks: w.chunks}).Allocated() }

// Finish returns the written bytes as a ChunkedBuffer (Spark's toChunkedByteBuffer). If the last
// chunk is less than half full it is copied to an exact-size slice, so the buffer holds little
// more memory than its size. The writer accepts no more writes.
func (w *ChunkedWriter) Finish() *ChunkedBuffer {
	w.done = true
	if last := len(w.chunks) - 1; last >= 0 && len(w.chunks[last]) < cap(w.chunks[last])/2 {
		w.chunks[last] = append([]byte(nil), w.chunks[last]...)
	}
	b := NewChunkedBuffer(w.chunks...)
	w.chunks = nil
	return b
}
