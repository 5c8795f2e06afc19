package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// The record file format (see doc.go for the byte layout).
const (
	// BatchHeaderSize is the size of the fixed header in front of every batch.
	BatchHeaderSize = 24
	// MaxRecordSize is the largest record a RecordWriter accepts (1 GiB).
	MaxRecordSize = 1 << 30
	// maxBatchRaw bounds a batch's uncompressed payload: MaxRecordSize plus the largest
	// BatchBytes plus the record's length prefix, far below the uint32 header fields.
	maxBatchRaw = MaxRecordSize + maxBatchBytes + binary.MaxVarintLen64
	// maxCompressedRaw bounds the uncompressed payload of a compressed batch, and so what
	// decompressing one batch may allocate: the largest BatchBytes plus as much again for the
	// record that ends the batch. A writer stores a larger batch (one holding a record of more
	// than 64 MiB) uncompressed; its stored bytes are read as they arrive, so their buffer is
	// backed by data, not by a length a header claims.
	maxCompressedRaw = 2 * maxBatchBytes
	// zstdWindow is the zstd window of writers and the largest window readers accept.
	zstdWindow = 1 << 20
	// zstdMinFCS: a zstd frame of at least this many bytes states its content size.
	zstdMinFCS = 256

	batchMagic0, batchMagic1 = 'S', 'W'
	batchVersion             = 1

	defaultBatchRecords = 10000    // spark.shuffle.spill.batchSize
	defaultBatchBytes   = 1 << 20  // 1 MiB
	maxBatchBytes       = 64 << 20 // 64 MiB
	// DefaultBufferSize is the default and minimum I/O buffer of record writers and readers
	// (a reader of a smaller section buffers only the section) and of DiskStore puts: 32 KiB,
	// Spark's spark.shuffle.file.buffer.
	DefaultBufferSize = 32 << 10
)

// Codec ids stored in batch headers.
const (
	codecNone byte = 0
	codecS2   byte = 1
	codecZstd byte = 2
)

// Compression selects how a RecordWriter compresses each batch (Spark's
// spark.shuffle.spill.compress / spark.io.compression.codec). The zero value is the default, S2.
type Compression uint8

const (
	// CompressionDefault is CompressionS2: Spark compresses spills by default (with lz4).
	CompressionDefault Compression = iota
	// CompressionNone stores batches uncompressed.
	CompressionNone
	// CompressionS2 compresses each batch with klauspost/compress/s2 (a faster Snappy
	// extension): several GB/s, modest ratios. Good for spills, which are written once and
	// read once soon after.
	CompressionS2
	// CompressionZstd compresses each batch with klauspost/compress/zstd at its fastest level:
	// better ratios, slower than S2.
	CompressionZstd
)

// String returns "none", "s2" or "zstd".
func (c Compression) String() string {
	switch c {
	case CompressionDefault, CompressionS2:
		return "s2"
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// RecordWriterConfig configures a RecordWriter. The zero value means Spark's defaults.
type RecordWriterConfig struct {
	// Compression of each batch. Default S2 (Spark: compressed spills, lz4).
	Compression Compression
	// BatchRecords ends a batch after this many records. Default 10000
	// (spark.shuffle.spill.batchSize).
	BatchRecords int
	// BatchBytes ends a batch once its uncompressed payload reaches this many bytes, so a
	// reader never holds more than about BatchBytes plus one record. Default 1 MiB, at most
	// 64 MiB. Spark batches by record count only.
	BatchBytes int
	// BufferSize is the write buffer. Default and minimum 32 KiB (spark.shuffle.file.buffer).
	BufferSize int
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c RecordWriterConfig) Validate() error {
	var errs []error
	if c.Compression > CompressionZstd {
		errs = append(errs, fmt.Errorf("storage: RecordWriterConfig.Compression %d unknown", c.Compression))
	}
	if c.BatchRecords < 0 {
		errs = append(errs, fmt.Errorf("storage: RecordWriterConfig.BatchRecords %d is negative", c.BatchRecords))
	}
	if c.BatchBytes < 0 || c.BatchBytes > maxBatchBytes {
		errs = append(errs, fmt.Errorf("storage: RecordWriterConfig.BatchBytes %d not in [0, %d]", c.BatchBytes, maxBatchBytes))
	}
	if c.BufferSize != 0 && c.BufferSize < DefaultBufferSize {
		errs = append(errs, fmt.Errorf("storage: RecordWriterConfig.BufferSize %d below the minimum %d", c.BufferSize, DefaultBufferSize))
	}
	return errors.Join(errs...)
}

func (c RecordWriterConfig) withDefaults() RecordWriterConfig {
	if c.Compression == CompressionDefault {
		c.Compression = CompressionS2
	}
	if c.BatchRecords == 0 {
		c.BatchRecords = defaultBatchRecords
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = defaultBatchBytes
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	return c
}

// BatchInfo describes one batch of a record file (see ScanBatches): where it starts, its framed
// size (header and payload) and how many records it holds. Open a reader on
// [Offset, Offset+Size) of the file to read just that batch (Spark's batchOffsets/batchSizes).
type BatchInfo struct {
	Offset  int64
	Size    int64
	Records int
}

// RecordWriter writes records in the record file format: batches of length-prefixed records, each
// framed with its size, record count and CRC-32C, optionally compressed. It plays the part of
// Spark's DiskBlockObjectWriter plus serialization stream (commitAndGet = EndBatch).
//
// Records are buffered into the current batch, which is written when it reaches BatchRecords or
// BatchBytes, on EndBatch and on Close. The RecordWriter does not close the io.Writer it writes
// to. After an error every call returns that error. Not safe for concurrent use.
//
// Memory: a writer holds its write buffer, the current batch (up to about BatchBytes plus one
// record, 1 MiB by default) and, when compressing, a scratch buffer of about the same size, until
// Close. A zstd writer also holds the encoder's state (about 2 MiB; window 1 MiB).
type RecordWriter struct {
	cfg     RecordWriterConfig
	bw      *bufio.Writer
	crc     *crc32.Table
	zenc    *zstd.Encoder
	batch   []byte // uncompressed payload of the current batch
	count   int    // records in the current batch
	prefix  int    // length-prefix bytes beginRecord reserves
	maxComp int    // larger batches are stored uncompressed: maxCompressedRaw (tests lower it)
	comp    []byte // compression scratch
	hdr     [BatchHeaderSize]byte
	written int64
	records int64
	batches int
	// For ReadBufferBytes: the largest stored batch, the largest compressed batch's raw size,
	// whether a batch is zstd-compressed.
	maxStored, maxDec int64
	zstdUsed          bool
	maxRecord         int   // LargestRecord
	raw               int64 // RawBytes
	err               error
	closed            bool
}

// ZstdDecoderBytes is an estimate of the state a RecordReader's zstd decoder holds (window and
// block buffers) once it decoded a batch; ReadBufferBytes counts it for files with zstd batches.
const ZstdDecoderBytes = zstdWindow + 256<<10

// NewRecordWriter returns a RecordWriter writing to w. It returns an error if cfg is invalid.
func NewRecordWriter(w io.Writer, cfg RecordWriterConfig) (*RecordWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rw := &RecordWriter{cfg: cfg, bw: bufio.NewWriterSize(w, cfg.BufferSize), crc: crc32.MakeTable(crc32.Castagnoli), prefix: 1,
		maxComp: maxCompressedRaw}
	if cfg.Compression == CompressionZstd {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("storage: zstd encoder: %w", err)
		}
		rw.zenc = enc
	}
	return rw, nil
}

// Write appends one record (copied; rec may be reused after the call).
func (w *RecordWriter) Write(rec []byte) error {
	w.prefix = uvarintLen(len(rec))
	start, err := w.beginRecord()
	if err != nil {
		return err
	}
	w.batch = append(w.batch, rec...)
	return w.endRecord(start)
}

// beginRecord and endRecord bracket appending one record's bytes to w.batch. beginRecord reserves
// room for the length prefix, guessing its size from the previous record (records tend to be
// alike); endRecord writes the prefix, moving the record only when the guess was wrong, and ends
// the batch when it is full.
func (w *RecordWriter) beginRecord() (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("storage: RecordWriter used after Close")
	}
	if w.batch == nil {
		w.batch = make([]byte, 0, min(w.cfg.BatchBytes+w.cfg.BatchBytes/8, 64<<10))
	}
	start := len(w.batch)
	w.batch = append(w.batch, make([]byte, w.prefix)...)
	return start, nil
}

func (w *RecordWriter) endRecord(start int) error {
	reserved := w.prefix
	l := len(w.batch) - start - reserved
	if l > MaxRecordSize {
		w.batch = w.batch[:start]
		return fmt.Errorf("storage: record of %d bytes exceeds the maximum %d", l, MaxRecordSize)
	}
	if p := uvarintLen(l); p != reserved {
		if p > reserved {
			w.batch = append(w.batch, make([]byte, p-reserved)...)
		}
		copy(w.batch[start+p:], w.batch[start+reserved:start+reserved+l])
		w.batch = w.batch[:start+p+l]
		w.prefix = p
	}
	binary.PutUvarint(w.batch[start:], uint64(l))
	w.maxRecord = max(w.maxRecord, l)
	w.count++
	if w.count >= w.cfg.BatchRecords || len(w.batch) >= w.cfg.BatchBytes {
		return w.EndBatch()
	}
	return nil
}

func uvarintLen(n int) int {
	p := 1
	for ; n >= 0x80; n >>= 7 {
		p++
	}
	return p
}

// EndBatch writes the current batch, if it holds any record, so the next record starts a new
// batch at offset BytesWritten() (Spark's commitAndGet). Use it to start each partition of a file
// on a batch boundary.
func (w *RecordWriter) EndBatch() error {
	if w.err != nil {
		return w.err
	}
	if w.count == 0 {
		return nil
	}
	payload, codec, comp := w.batch, codecNone, w.cfg.Compression
	if len(w.batch) > w.maxComp {
		comp = CompressionNone
	}
	switch comp {
	case CompressionS2:
		if n := s2.MaxEncodedLen(len(w.batch)); cap(w.comp) < n {
			w.comp = make([]byte, n)
		}
		if c := s2.Encode(w.comp[:cap(w.comp)], w.batch); len(c) < len(w.batch) {
			payload, codec = c, codecS2
		}
	case CompressionZstd:
		w.comp = w.zenc.EncodeAll(w.batch, w.comp[:0])
		if len(w.comp) < len(w.batch) {
			payload, codec = w.comp, codecZstd
		}
	}
	h := w.hdr[:]
	h[0], h[1], h[2], h[3] = batchMagic0, batchMagic1, batchVersion, codec
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(w.batch)))
	binary.LittleEndian.PutUint32(h[12:], uint32(w.count))
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(payload, w.crc))
	binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], w.crc))
	size := int64(BatchHeaderSize + len(payload))
	if _, err := w.bw.Write(h); err == nil {
		_, err = w.bw.Write(payload)
		if err != nil {
			w.err = err
		}
	} else {
		w.err = err
	}
	if w.err != nil {
		w.err = fmt.Errorf("storage: writing batch %d (%d records, %d bytes) at offset %d: %w",
			w.batches, w.count, size, w.written, w.err)
		return w.err
	}
	w.batches++
	w.maxStored = max(w.maxStored, int64(len(payload)))
	if codec != codecNone {
		w.maxDec = max(w.maxDec, int64(len(w.batch)))
		w.zstdUsed = w.zstdUsed || codec == codecZstd
	}
	w.raw += int64(len(w.batch))
	w.written += size
	w.records += int64(w.count)
	w.batch, w.count = w.batch[:0], 0
	return nil
}

// Close ends the last batch and flushes the buffer; it does not close the underlying writer.
// An empty writer writes nothing (a file with no records is empty, as in Spark). Calling Close
// again returns the first result.
func (w *RecordWriter) Close() error {
	if w.closed {
		return w.err
	}
	if err := w.EndBatch(); err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("storage: flushing record writer at offset %d: %w", w.written, err)
		}
	}
	w.closed = true
	if w.zenc != nil {
		_ = w.zenc.Close() // only releases resources; EncodeAll has no stream to finish
		w.zenc = nil
	}
	w.batch, w.comp = nil, nil
	return w.err
}

// BytesWritten returns the framed size of the batches written so far; after Close it is the
// length of the output (Spark's bytesWritten metric, equal to the file length: SP-01).
func (w *RecordWriter) BytesWritten() int64 { return w.written }

// Records returns the number of records in written batches; after Close, all records
// (Spark's recordsWritten).
func (w *RecordWriter) Records() int64 { return w.records }

// ReadBufferBytes bounds the memory a RecordReader of the batches written so far allocates
// (NewRecordReader with their total size): its read buffer (DefaultBufferSize, or the data's
// size if smaller), the largest stored batch and, for compressed batches, the largest
// decompressed one (plus ZstdDecoderBytes for zstd). Callers that account readers acquire it
// before they open one.
func (w *RecordWriter) ReadBufferBytes() int64 {
	if w.written == 0 {
		return 0
	}
	n := min(w.written, DefaultBufferSize) + w.maxStored + w.maxDec
	if w.zstdUsed {
		n += ZstdDecoderBytes
	}
	return n
}

// RawBytes returns the uncompressed payload bytes (records and their length prefixes) of the
// batches written so far.
func (w *RecordWriter) RawBytes() int64 { return w.raw }

// LargestRecord returns the size of the largest record written so far.
func (w *RecordWriter) LargestRecord() int { return w.maxRecord }

// NumBatches returns the number of batches written so far. The writer keeps no index of them,
// which would grow with the file: ScanBatches reads it from the file's batch headers.
func (w *RecordWriter) NumBatches() int { return w.batches }

// ScanBatches returns an iterator over the batches of the record file data in r, in order, read
// from their headers alone (24 bytes each; the payloads are not read or checked), and a final
// error: a header that is torn, altered or runs past size is an error wrapping ErrCorrupt, as
// RecordReader reports it. size is the exact length of the data (the writer's BytesWritten).
// It holds nothing between batches, so it lists the batches of a file of any size.
func ScanBatches(r io.ReaderAt, size int64) iter.Seq2[BatchInfo, error] {
	return func(yield func(BatchInfo, error) bool) {
		crc := crc32.MakeTable(crc32.Castagnoli)
		var hdr [BatchHeaderSize]byte
		for at := int64(0); at < size; {
			b, err := readBatchHeader(r, hdr[:], crc, at, size)
			if err != nil {
				yield(BatchInfo{}, err)
				return
			}
			info := BatchInfo{Offset: at, Size: BatchHeaderSize + b.stored, Records: int(b.count)}
			if !yield(info, nil) {
				return
			}
			at += info.Size
		}
	}
}

// readBatchHeader reads into hdr and checks the header of the batch at offset at of r, data of
// size bytes.
func readBatchHeader(r io.ReaderAt, hdr []byte, crc *crc32.Table, at, size int64) (batchHeader, error) {
	if left := size - at; left < BatchHeaderSize {
		return batchHeader{}, corruptf("truncated batch header at offset %d: %d of %d bytes", at, left, BatchHeaderSize)
	}
	if n, err := r.ReadAt(hdr, at); n < len(hdr) {
		if err == io.EOF {
			return batchHeader{}, corruptf("truncated batch header at offset %d: %d of %d bytes", at, n, BatchHeaderSize)
		}
		return batchHeader{}, fmt.Errorf("storage: reading batch header at offset %d: %w", at, err)
	}
	return parseBatchHeader(hdr, crc, at, size)
}

// RecordReader reads a record file, or a section of one, written by RecordWriter (Spark's
// DiskMapIterator / SpillReader deserialization streams). It verifies every batch's header and
// CRC-32C before returning any record of it; anything torn, truncated or altered is an error
// wrapping ErrCorrupt with the offset and sizes involved.
//
// It holds one batch in memory at a time (stored and, if compressed, decompressed: about twice
// the writer's BatchBytes) until Close. Not safe for concurrent use.
type RecordReader struct {
	r       io.Reader
	size    int64 // exact bytes expected, or -1
	off     int64 // bytes consumed
	crc     *crc32.Table
	zdec    *zstd.Decoder
	hdr     [BatchHeaderSize]byte
	stored  []byte // the batch's payload as stored
	dec     []byte // decompression buffer (never shared with stored)
	raw     []byte // the uncompressed payload: stored or dec
	pos     int    // next record in raw
	left    int    // records left in the batch
	batchAt int64
	records int64
	err     error
}

// NewRecordReader returns a reader of the record file data in r. size is the exact number of
// bytes to read (the writer's BytesWritten, or the sum of a run of the sizes ScanBatches
// lists); the reader never reads past it and reports a shorter stream as ErrCorrupt. Pass size
// -1 when it is not known: then a stream cut exactly at a batch boundary cannot be told from
// its end. To read a section of a file: NewRecordReader(io.NewSectionReader(f, off, n), n).
func NewRecordReader(r io.Reader, size int64) *RecordReader {
	buf := DefaultBufferSize
	if size >= 0 {
		r = io.LimitReader(r, size)
		buf = int(min(size, int64(buf))) // a small section needs no more (bufio takes at least 16)
	}
	return &RecordReader{
		r:    bufio.NewReaderSize(r, buf),
		size: size,
		crc:  crc32.MakeTable(crc32.Castagnoli),
	}
}

// Next returns the next record, or io.EOF after the last one. The record aliases the reader's
// buffer and is valid only until the next call; copy what you keep (or use a copying Codec
// through a TypedReader). After an error every call returns it.
func (r *RecordReader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	for r.left == 0 {
		if err := r.loadBatch(); err != nil {
			r.err = err
			return nil, err
		}
	}
	// The framing was checked by loadBatch.
	l, n := int(r.raw[r.pos]), 1
	if l >= 0x80 {
		u, k, _ := decodeUvarintSlow(r.raw[r.pos:])
		l, n = int(u), k
	}
	rec := r.raw[r.pos+n : r.pos+n+l : r.pos+n+l]
	r.pos += n + l
	r.left--
	r.records++
	return rec, nil
}

// loadBatch reads, verifies and decompresses the next batch.
func (r *RecordReader) loadBatch() error {
	at := r.off
	k, err := io.ReadFull(r.r, r.hdr[:])
	switch {
	case k == 0 && err == io.EOF:
		if r.size >= 0 && at != r.size {
			return corruptf("record data ends after %d bytes, expected %d", at, r.size)
		}
		return io.EOF
	case err == io.ErrUnexpectedEOF:
		return corruptf("truncated batch header at offset %d: %d of %d bytes", at, k, BatchHeaderSize)
	case err != nil:
		return fmt.Errorf("storage: reading batch header at offset %d: %w", at, err)
	}
	b, err := parseBatchHeader(r.hdr[:], r.crc, at, r.size)
	if err != nil {
		return err
	}
	codec, stored, rawLen, count := b.codec, b.stored, b.rawLen, b.count
	if r.size >= 0 { // the length was checked against the data's size: allocate it at once
		r.stored = grow(r.stored, int(stored))
	}
	r.stored, k, err = readGrowing(r.r, r.stored, int(stored))
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return corruptf("truncated batch payload at offset %d: %d of %d bytes", at+BatchHeaderSize, k, stored)
		}
		return fmt.Errorf("storage: reading batch payload at offset %d: %w", at+BatchHeaderSize, err)
	}
	if got, want := crc32.Checksum(r.stored, r.crc), b.sum; got != want {
		return corruptf("batch payload checksum mismatch at offset %d (%d bytes): stored %08x, computed %08x", at, stored, want, got)
	}
	if r.raw, err = r.decompress(codec, int(rawLen)); err != nil {
		return corruptf("batch at offset %d (%d bytes, codec %d): %v", at, stored, codec, err)
	}
	if err := checkFraming(r.raw, int(count)); err != nil {
		return fmt.Errorf("batch at offset %d: %w", at, err)
	}
	r.off = at + BatchHeaderSize + stored
	r.batchAt, r.pos, r.left = at, 0, int(count)
	return nil
}

// batchHeader is a batch header's fields.
type batchHeader struct {
	codec                 byte
	stored, rawLen, count int64
	sum                   uint32 // the payload's CRC-32C
}

// parseBatchHeader checks the header h of the batch at offset at of data of size bytes (-1:
// unknown): magic and version, its CRC, codec and length consistency, and that the batch fits
// in the data. Any failure is an error wrapping ErrCorrupt.
func parseBatchHeader(h []byte, crc *crc32.Table, at, size int64) (batchHeader, error) {
	if h[0] != batchMagic0 || h[1] != batchMagic1 || h[2] != batchVersion {
		return batchHeader{}, corruptf("bad batch magic/version %x at offset %d", h[:3], at)
	}
	if got, want := crc32.Checksum(h[:20], crc), binary.LittleEndian.Uint32(h[20:]); got != want {
		return batchHeader{}, corruptf("batch header checksum mismatch at offset %d: stored %08x, computed %08x", at, want, got)
	}
	b := batchHeader{codec: h[3], stored: int64(binary.LittleEndian.Uint32(h[4:])),
		rawLen: int64(binary.LittleEndian.Uint32(h[8:])), count: int64(binary.LittleEndian.Uint32(h[12:])),
		sum: binary.LittleEndian.Uint32(h[16:])}
	codec, stored, rawLen, count := b.codec, b.stored, b.rawLen, b.count
	switch {
	case codec > codecZstd:
		return b, corruptf("unknown codec %d in batch at offset %d", codec, at)
	case codec == codecNone && stored != rawLen, codec != codecNone && stored >= rawLen:
		return b, corruptf("batch at offset %d: codec %d with %d stored and %d raw bytes", at, codec, stored, rawLen)
	case rawLen > maxBatchRaw:
		return b, corruptf("batch at offset %d claims %d raw bytes, above the limit %d", at, rawLen, maxBatchRaw)
	case codec != codecNone && rawLen > maxCompressedRaw:
		return b, corruptf("compressed batch at offset %d claims %d raw bytes, above the limit %d", at, rawLen, maxCompressedRaw)
	case count == 0 || count > rawLen:
		return b, corruptf("batch at offset %d claims %d records in %d bytes", at, count, rawLen)
	case size >= 0 && at+BatchHeaderSize+stored > size:
		return b, corruptf("batch at offset %d of %d bytes runs past the end of the %d-byte data", at, BatchHeaderSize+stored, size)
	}
	return b, nil
}

func (r *RecordReader) decompress(codec byte, rawLen int) ([]byte, error) {
	switch codec {
	case codecS2:
		if n, err := s2.DecodedLen(r.stored); err != nil || n != rawLen {
			return nil, fmt.Errorf("s2 decoded length %d (err %v), header says %d", n, err, rawLen)
		}
		out, err := s2.Decode(grow(r.dec, rawLen), r.stored)
		if err != nil {
			return nil, err
		}
		r.dec = out
		return out, nil
	case codecZstd:
		// The frame header states the content size (writers omit it only below 256 bytes): check
		// it before allocating, then decode into exactly rawLen bytes of capacity, so a frame
		// that decodes to more (a decompression bomb) fails once it has filled them.
		var fh zstd.Header
		if err := fh.Decode(r.stored); err != nil {
			return nil, fmt.Errorf("zstd frame header: %w", err)
		}
		if fh.HasFCS && fh.FrameContentSize != uint64(rawLen) || !fh.HasFCS && rawLen >= zstdMinFCS {
			return nil, fmt.Errorf("zstd frame content size %d (stated %t), header says %d", fh.FrameContentSize, fh.HasFCS, rawLen)
		}
		if r.zdec == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true),
				zstd.WithDecoderMaxMemory(maxCompressedRaw), zstd.WithDecoderMaxWindow(zstdWindow))
			if err != nil {
				return nil, err
			}
			r.zdec = d
		}
		out, err := r.zdec.DecodeAll(r.stored, grow(r.dec, rawLen)[:0])
		if err != nil {
			return nil, err
		}
		if len(out) != rawLen {
			return nil, fmt.Errorf("zstd decoded %d bytes, header says %d", len(out), rawLen)
		}
		r.dec = out
		return out, nil
	}
	return r.stored, nil
}

// checkFraming checks that raw is exactly count canonical length-prefixed records.
func checkFraming(raw []byte, count int) error {
	pos := 0
	for i := range count {
		if pos < len(raw) && raw[pos] < 0x80 && int(raw[pos]) < len(raw)-pos { // one-byte length
			pos += 1 + int(raw[pos])
			continue
		}
		l, n, err := decodeLen(raw[pos:], "record")
		if err != nil {
			return fmt.Errorf("record %d of %d at payload byte %d: %w", i, count, pos, err)
		}
		pos += n + l
	}
	if pos != len(raw) {
		return corruptf("%d trailing bytes after %d records in a %d-byte payload", len(raw)-pos, count, len(raw))
	}
	return nil
}

// grow returns buf resized to n bytes, reallocating only when its capacity is short.
func grow(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, n)
	}
	return buf[:n]
}

// readGrowing reads exactly n bytes into buf (resized). When buf must grow it grows in steps as
// data arrives, so a corrupt length on a short stream does not allocate the claimed size.
func readGrowing(r io.Reader, buf []byte, n int) ([]byte, int, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		k, err := io.ReadFull(r, buf)
		return buf, k, err
	}
	buf = buf[:0]
	for len(buf) < n {
		step := min(n-len(buf), max(len(buf), 64<<10))
		buf = slices.Grow(buf, step)
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, len(buf), err
		}
	}
	return buf, n, nil
}

// Records returns the number of records returned so far.
func (r *RecordReader) Records() int64 { return r.records }

// Offset returns the number of bytes consumed: the end of the last batch loaded.
func (r *RecordReader) Offset() int64 { return r.off }

// All returns an iterator over the remaining records and a final error (never io.EOF). Records
// alias the reader's buffer as with Next.
func (r *RecordReader) All() iter.Seq2[[]byte, error] { return seqOf(r.Next) }

// seqOf turns a Next function (io.EOF at the end) into an iterator that yields a final error,
// if any, and stops.
func seqOf[T any](next func() (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			v, err := next()
			if err == io.EOF || !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// Close releases the reader's buffers and decompressor. It does not close the underlying reader.
func (r *RecordReader) Close() error {
	if r.zdec != nil {
		r.zdec.Close()
		r.zdec = nil
	}
	r.stored, r.dec, r.raw, r.left = nil, nil, nil, 0
	if r.err == nil {
		r.err = errors.New("storage: RecordReader used after Close")
	}
	return nil
}

// TypedWriter writes values of type T as records through a Codec (a Spark SerializationStream
// bound to one record type). Records are encoded straight into the batch buffer.
type TypedWriter[T any] struct {
	w *RecordWriter
	c Codec[T]
}

// NewTypedWriter returns a TypedWriter writing through w with codec c.
func NewTypedWriter[T any](w *RecordWriter, c Codec[T]) *TypedWriter[T] {
	return &TypedWriter[T]{w: w, c: c}
}

// Write appends v as one record.
func (t *TypedWriter[T]) Write(v T) error {
	start, err := t.w.beginRecord()
	if err != nil {
		return err
	}
	t.w.batch = t.c.Append(t.w.batch, v)
	return t.w.endRecord(start)
}

// Writer returns the underlying RecordWriter (for EndBatch, Close and the counters).
func (t *TypedWriter[T]) Writer() *RecordWriter { return t.w }

// TypedReader reads records of type T through a Codec (a Spark DeserializationStream bound to one
// record type). A record that does not decode, or has bytes left after its value, is ErrCorrupt.
type TypedReader[T any] struct {
	r *RecordReader
	c Codec[T]
}

// NewTypedReader returns a TypedReader reading from r with codec c.
func NewTypedReader[T any](r *RecordReader, c Codec[T]) *TypedReader[T] {
	return &TypedReader[T]{r: r, c: c}
}

// Next returns the next value, or io.EOF after the last one. Values decoded by aliasing codecs
// are valid only until the next call.
func (t *TypedReader[T]) Next() (T, error) {
	var zero T
	rec, err := t.r.Next()
	if err != nil {
		return zero, err
	}
	v, n, err := t.c.Decode(rec)
	if err != nil {
		return zero, fmt.Errorf("storage: record %d (%d bytes) in batch at offset %d: %w", t.r.records-1, len(rec), t.r.batchAt, err)
	}
	if n != len(rec) {
		return zero, corruptf("record %d in batch at offset %d: %d bytes left after the value of %d bytes", t.r.records-1, t.r.batchAt, len(rec)-n, n)
	}
	return v, nil
}

// All returns an iterator over the remaining values and a final error (never io.EOF).
func (t *TypedReader[T]) All() iter.Seq2[T, error] { return seqOf(t.Next) }

// Reader returns the underlying RecordReader.
func (t *TypedReader[T]) Reader() *RecordReader { return t.r }
