package tungsten

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// spillFile is one sorted run on disk (Spark's UnsafeSorterSpillWriter output): a storage record
// file (checksummed batches, compressed per SpillConfig) whose records are an 8-byte big-endian
// key prefix followed by the record's bytes. Two kinds of runs leave out what the reader can
// compute:
//   - keyed: the records are key-value records ([4-byte key length][key][value]) alone, their
//     prefix being their key's, BytesPrefix(key) (an Aggregator's runs: 8 bytes less per record
//     to copy, compress and read);
//   - inline: the records are the 16 bytes of an inline pair, the key word and the value word of
//     a record in the page format (putInlineRecord), whose key word is its prefix and whose
//     length word is always 8.
type spillFile struct {
	id      storage.BlockID
	size    int64
	records int64
	inline  bool
	// readCost is a reader's buffers (storage.RecordWriter.ReadBufferBytes), record the
	// largest record (its prefix included).
	readCost, record int64
	keyed            bool
}

// spillWriter writes one run. Abort (or a failed Commit) deletes the file.
type spillWriter struct {
	scope  *storage.Scope
	id     storage.BlockID
	f      storage.File
	rw     *storage.RecordWriter
	buf    []byte
	keyed  bool // a keyed file: write ignores the prefixes, the keys' (see spillFile)
	inline bool // an inline run: its first record came from writeInline
}

// defaultSpillBatchBytes is the batch size of spill files unless configured: a reader holds one
// batch (twice, compressed), and a merge holds one reader per run, so batches are smaller than
// storage's 1 MiB default and a merge of a given memory reads more runs at once.
const defaultSpillBatchBytes = 64 << 10

// spillDefaults is cfg with the spill files' default batch size: defaultSpillBatchBytes, and in
// memory.Strict accounting no more than 1/64 of the on-heap pool (at least 8 KiB), so that a
// small budget still holds a writer and a few readers.
func spillDefaults(cfg storage.RecordWriterConfig, m *memory.UnifiedManager) storage.RecordWriterConfig {
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = defaultSpillBatchBytes
		if m.Accounting() == memory.Strict {
			cfg.BatchBytes = int(min(defaultSpillBatchBytes, max(8<<10, m.Metrics().Pools[memory.OnHeap].Max/64)))
		}
	}
	return cfg
}

// newSpillWriter creates a spill file. Its buffers (writerCost) are the caller's to account.
func newSpillWriter(scope *storage.Scope, cfg storage.RecordWriterConfig) (*spillWriter, error) {
	id, f, err := scope.CreateTempLocal()
	if err != nil {
		return nil, fmt.Errorf("tungsten: creating spill file: %w", err)
	}
	w := &spillWriter{scope: scope, id: id, f: f}
	if w.rw, err = storage.NewRecordWriter(f, cfg); err != nil {
		return nil, errors.Join(err, w.Abort())
	}
	return w, nil
}

// newKeyedSpillWriter creates a keyed spill file (see spillFile): its records are key-value
// records whose prefix is BytesPrefix of their key.
func newKeyedSpillWriter(scope *storage.Scope, cfg storage.RecordWriterConfig) (*spillWriter, error) {
	w, err := newSpillWriter(scope, cfg)
	if err == nil {
		w.keyed = true
	}
	return w, err
}

func (w *spillWriter) write(rec []byte, prefix int64) error {
	if w.inline {
		panic("tungsten: a record written to a run of inline pairs")
	}
	out := rec
	if !w.keyed {
		w.buf = binary.BigEndian.AppendUint64(w.buf[:0], uint64(prefix))
		w.buf = append(w.buf, rec...)
		out = w.buf
	}
	return w.put(out)
}

// writeInline writes the inline pair of key word k and value v: the record putInlineRecord
// formats, stored as its last 16 bytes.
func (w *spillWriter) writeInline(k uint64, v int64) error {
	if !w.inline {
		if w.keyed || w.rw.Records() > 0 {
			panic("tungsten: an inline pair written to a run of records")
		}
		w.inline = true
	}
	w.buf = binary.BigEndian.AppendUint64(w.buf[:0], k)
	w.buf = binary.BigEndian.AppendUint64(w.buf, inlineWord(v))
	return w.put(w.buf)
}

func (w *spillWriter) put(rec []byte) error {
	if err := w.rw.Write(rec); err != nil {
		return fmt.Errorf("tungsten: writing spill file %s after %d records: %w", w.id, w.rw.Records(), err)
	}
	return nil
}

func (w *spillWriter) commit() (spillFile, error) {
	err := w.rw.Close()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return spillFile{}, errors.Join(fmt.Errorf("tungsten: finishing spill file %s: %w", w.id, err), w.Abort())
	}
	return spillFile{id: w.id, size: w.rw.BytesWritten(), records: w.rw.Records(), inline: w.inline,
		readCost: w.rw.ReadBufferBytes(), record: int64(w.rw.LargestRecord()), keyed: w.keyed}, nil
}

// Abort closes and deletes the file.
func (w *spillWriter) Abort() error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Close())
		w.f = nil
	}
	if _, err := w.scope.Remove(w.id); err != nil {
		errs = append(errs, fmt.Errorf("tungsten: deleting spill file %s: %w", w.id, err))
	}
	return errors.Join(errs...)
}

func (f spillFile) remove(scope *storage.Scope) error {
	if _, err := scope.Remove(f.id); err != nil {
		return fmt.Errorf("tungsten: deleting spill file %s: %w", f.id, err)
	}
	return nil
}

// decodeSpillRecord splits a spill record into its prefix and bytes.
func decodeSpillRecord(rec []byte) (prefix int64, data []byte, err error) {
	if len(rec) < 8 {
		return 0, nil, fmt.Errorf("%w: tungsten: spill record of %d bytes, shorter than its 8-byte prefix", storage.ErrCorrupt, len(rec))
	}
	return int64(binary.BigEndian.Uint64(rec)), rec[8:], nil
}

// decodeInlineSpillRecord turns a record of an inline run into the record in the page format,
// written into buf, and its prefix.
func decodeInlineSpillRecord(rec []byte, buf *[inlineRecordBytes]byte) (prefix int64, data []byte, err error) {
	if len(rec) != inlineRecordBytes-uao {
		return 0, nil, fmt.Errorf("%w: tungsten: inline spill record of %d bytes, want %d", storage.ErrCorrupt, len(rec), inlineRecordBytes-uao)
	}
	order.PutUint32(buf[:], 8)
	copy(buf[uao:], rec)
	return int64(binary.BigEndian.Uint64(rec)), buf[:], nil
}

// decodeKeyedRecord is decodeSpillRecord for a keyed file's record: the prefix is its key's.
func decodeKeyedRecord(rec []byte) (prefix int64, data []byte, err error) {
	if len(rec) < uao {
		return 0, nil, fmt.Errorf("%w: tungsten: key-value record of %d bytes, shorter than its key length", storage.ErrCorrupt, len(rec))
	}
	klen := order.Uint32(rec)
	if klen&deadKey != 0 || int64(klen) > int64(len(rec)-uao) {
		return 0, nil, fmt.Errorf("%w: tungsten: key-value record of %d bytes with a key of %d bytes", storage.ErrCorrupt, len(rec), klen)
	}
	return prefixAt(rec, uao, uao+int(klen)), rec, nil
}

// spillReader reads a run back (Spark's UnsafeSorterSpillReader). The record it returns aliases
// its buffer until the next call. It checks the run holds exactly the records written: fewer or
// more is storage.ErrCorrupt. With del, the file is deleted when the reader ends or closes.
// release, if not nil, gives back the memory accounted for its buffers (file.readCost) when it
// ends or closes.
type spillReader struct {
	scope   *storage.Scope
	file    spillFile
	del     bool
	f       storage.File
	rr      *storage.RecordReader
	read    int64
	rec     []byte
	prefix  int64
	err     error
	release func()
	buf     [inlineRecordBytes]byte // the current record of an inline run
}

// openSpill opens a reader of file; on error it calls release.
func openSpill(scope *storage.Scope, file spillFile, del bool, release func()) (*spillReader, error) {
	f, err := scope.Manager().Open(file.id)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, fmt.Errorf("tungsten: opening spill file %s (%d bytes): %w", file.id, file.size, err)
	}
	return &spillReader{scope: scope, file: file, del: del, f: f, rr: storage.NewRecordReader(f, file.size), release: release}, nil
}

func (r *spillReader) next() bool {
	if r.err != nil || r.rr == nil {
		return false
	}
	rec, err := r.rr.Next()
	switch {
	case err == io.EOF:
		if r.read != r.file.records {
			r.err = fmt.Errorf("%w: tungsten: spill file %s ends after %d records, %d were written",
				storage.ErrCorrupt, r.file.id, r.read, r.file.records)
		}
		r.err = errors.Join(r.err, r.close())
		return false
	case err != nil:
		r.err = fmt.Errorf("tungsten: reading spill file %s (%d bytes, %d of %d records read): %w",
			r.file.id, r.file.size, r.read, r.file.records, err)
		return false
	}
	if r.read++; r.read > r.file.records {
		r.err = fmt.Errorf("%w: tungsten: spill file %s holds more than the %d records written", storage.ErrCorrupt, r.file.id, r.file.records)
		return false
	}
	switch {
	case r.file.inline:
		r.prefix, r.rec, r.err = decodeInlineSpillRecord(rec, &r.buf)
	case r.file.keyed:
		r.prefix, r.rec, r.err = decodeKeyedRecord(rec)
	default:
		r.prefix, r.rec, r.err = decodeSpillRecord(rec)
	}
	return r.err == nil
}

func (r *spillReader) close() error {
	if r.rr == nil {
		return nil
	}
	errs := []error{r.rr.Close(), r.f.Close()}
	r.rr, r.f, r.rec = nil, nil, nil
	if r.release != nil {
		r.release()
		r.release = nil
	}
	if r.del {
		errs = append(errs, r.file.remove(r.scope))
	}
	return errors.Join(errs...)
}
