package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

// DiskStoreConfig configures a DiskStore. The zero value means Spark's defaults.
type DiskStoreConfig struct {
	// BufferSize is the write buffer of Put. Default and minimum 32 KiB (spark.shuffle.file.buffer).
	BufferSize int
	// ChunkSize is the chunk size of the ChunkedBuffers GetBytes returns. Default 4 MiB.
	ChunkSize int
	// Logger receives one debug line per stored block. Default: no logging.
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c DiskStoreConfig) Validate() error {
	var errs []error
	if c.BufferSize != 0 && c.BufferSize < DefaultBufferSize {
		errs = append(errs, fmt.Errorf("storage: DiskStoreConfig.BufferSize %d below the minimum %d", c.BufferSize, DefaultBufferSize))
	}
	if c.ChunkSize < 0 {
		errs = append(errs, fmt.Errorf("storage: DiskStoreConfig.ChunkSize %d is negative", c.ChunkSize))
	}
	return errors.Join(errs...)
}

// DiskStore is Spark's DiskStore: blocks stored as files of a DiskBlockManager. A block is put by
// streaming it to a writer (never needing it whole in memory) and read back as a stream or as a
// ChunkedBuffer. Blocks of records hold the record file format (a RecordWriter over Put's
// writer); the store itself moves bytes. Every failed put deletes its partial file. It is safe
// for concurrent use; callers hold the block's lock (BlockInfoManager) as in Spark.
type DiskStore struct {
	dm    *DiskBlockManager
	cfg   DiskStoreConfig
	log   *zap.Logger
	mu    sync.Mutex
	sizes map[BlockID]int64 // committed blocks
}

// NewDiskStore returns a DiskStore keeping its files in dm.
func NewDiskStore(dm *DiskBlockManager, cfg DiskStoreConfig) (*DiskStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &DiskStore{dm: dm, cfg: cfg, log: log.Named("storage"), sizes: map[BlockID]int64{}}, nil
}

// Put stores block id by calling write with a buffered writer to its new file (Spark's
// put(blockId)(writeFunc)), and returns the block's size. If the block is already stored it
// returns ErrBlockExists. If write returns an error or panics, or the file cannot be written, the
// partial file is deleted and the error returned (the panic continues).
func (s *DiskStore) Put(id BlockID, write func(w io.Writer) error) (size int64, err error) {
	if s.Contains(id) {
		return 0, fmt.Errorf("%w: block %s is already present in the disk store", ErrBlockExists, id)
	}
	f, err := s.dm.Create(id)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, s.cfg.BufferSize)
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			if _, rerr := s.dm.Remove(id); rerr != nil && err != nil {
				err = fmt.Errorf("%w (and the partial file was not deleted: %v)", err, rerr)
			}
		}
	}()
	if err := write(bw); err != nil {
		return 0, fmt.Errorf("storage: writing block %s to disk (%d bytes written): %w", id, cw.n+int64(bw.Buffered()), err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("storage: writing block %s to disk (%d bytes written): %w", id, cw.n, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("storage: closing file of block %s (%d bytes): %w", id, cw.n, err)
	}
	committed = true
	s.mu.Lock()
	s.sizes[id] = cw.n
	s.mu.Unlock()
	s.log.Debug("block stored on disk", zap.Stringer("block", id), zap.String("bytes", humanize.IBytes(uint64(cw.n))))
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// PutBytes stores a block given as bytes (Spark's putBytes), chunk by chunk.
func (s *DiskStore) PutBytes(id BlockID, b *ChunkedBuffer) error {
	_, err := s.Put(id, func(w io.Writer) error {
		_, err := b.WriteTo(w)
		return err
	})
	return err
}

// BlockReader reads one stored block: sequentially (io.Reader) or at offsets (io.ReaderAt, e.g.
// a record section). Close it when done.
// Spark counterpart: the BlockData (DiskBlockData) that DiskStore.getBytes returns.
type BlockReader struct {
	*io.SectionReader
	f File
}

// Close closes the block's file.
func (r *BlockReader) Close() error { return r.f.Close() }

// Open returns a reader of block id (Spark's getBytes(...).toInputStream). A missing block is
// ErrBlockNotFound; a file whose length differs from what Put wrote is ErrCorrupt.
func (s *DiskStore) Open(id BlockID) (*BlockReader, error) {
	size, ok := s.Size(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s in the disk store", ErrBlockNotFound, id)
	}
	f, err := s.dm.Open(id)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() != size {
		err = corruptf("file of block %s has %d bytes, %d were written", id, st.Size(), size)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &BlockReader{SectionReader: io.NewSectionReader(f, 0, size), f: f}, nil
}

// GetBytes reads block id into a ChunkedBuffer of ChunkSize chunks (Spark's
// getBytes(...).toChunkedByteBuffer). The caller accounts for its memory.
func (s *DiskStore) GetBytes(id BlockID) (*ChunkedBuffer, error) {
	r, err := s.Open(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var chunks [][]byte
	for left := r.Size(); left > 0; {
		c := make([]byte, min(left, int64(s.cfg.ChunkSize)))
		if _, err := io.ReadFull(r, c); err != nil {
			return nil, fmt.Errorf("storage: reading block %s at offset %d of %d: %w", id, r.Size()-left, r.Size(), err)
		}
		chunks = append(chunks, c)
		left -= int64(len(c))
	}
	return NewChunkedBuffer(chunks...), nil
}

// Size returns the size of block id (Spark's getSize) and whether it is stored.
func (s *DiskStore) Size(id BlockID) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size, ok := s.sizes[id]
	return size, ok
}

// Contains reports whether block id is stored (Spark's contains).
func (s *DiskStore) Contains(id BlockID) bool {
	_, ok := s.Size(id)
	return ok
}

// Remove deletes block id's file (Spark's remove) and reports whether it was stored. When the
// deletion fails the block stays stored (and its file tracked by the DiskBlockManager), so
// Remove can be retried.
func (s *DiskStore) Remove(id BlockID) (bool, error) {
	if !s.Contains(id) {
		return false, nil
	}
	if _, err := s.dm.Remove(id); err != nil {
		return true, err
	}
	s.mu.Lock()
	delete(s.sizes, id)
	s.mu.Unlock()
	return true, nil
}
