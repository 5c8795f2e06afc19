package collection

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"unsafe"

	"github.com/spillway/spillway/storage"
)

// spillFile describes one spill file written by a spillWriter: Spark's (file, blockId,
// batchSizes) triple given to DiskMapIterator and SpillReader, without the batch sizes, which
// would grow with the file (the reader needs only the file's size; storage.ScanBatches lists
// the batches).
type spillFile struct {
	id      storage.BlockID
	size    int64 // bytes in the file (the writer's BytesWritten, == file length)
	records int64
	// What a merge needs to know: a reader's buffers (storage.RecordWriter.ReadBufferBytes)
	// and the largest record.
	readCost int64
	record   int64
	raw      int64
}

// info is what the merge planner needs to know of the file.
func (f spillFile) info() fileInfo {
	return fileInfo{readCost: f.readCost, record: f.record, raw: f.raw, size: f.size}
}

// spillWriter writes records of type T to a new temporary block file of a disk scope in the
// record file format (Spark's DiskBlockObjectWriter plus serialization stream). Every
// SpillConfig.BatchSize records (or BatchBytes bytes) it ends a batch. On any error the file is
// deleted; Commit or Abort must be called exactly once.
type spillWriter[T any] struct {
	scope *storage.Scope
	id    storage.BlockID
	f     storage.File
	rw    *storage.RecordWriter
	tw    *storage.TypedWriter[T]
}

// newSpillWriter creates the file with create (a Scope's CreateTempLocal or CreateTempShuffle).
func newSpillWriter[T any](scope *storage.Scope, create func() (storage.BlockID, storage.File, error),
	cfg SpillConfig, c storage.Codec[T]) (*spillWriter[T], error) {
	id, f, err := create()
	if err != nil {
		return nil, fmt.Errorf("collection: creating spill file: %w", err)
	}
	rw, err := storage.NewRecordWriter(f, cfg.recordWriterConfig())
	if err != nil {
		w := &spillWriter[T]{scope: scope, id: id, f: f}
		return nil, errors.Join(err, w.Abort())
	}
	return &spillWriter[T]{scope: scope, id: id, f: f, rw: rw, tw: storage.NewTypedWriter(rw, c)}, nil
}

// Write appends one record.
func (w *spillWriter[T]) Write(v T) error {
	if err := w.tw.Write(v); err != nil {
		return fmt.Errorf("collection: writing spill file %s after %d records: %w", w.id, w.rw.Records(), err)
	}
	return nil
}

// Commit ends the last batch and closes the file; on error the file is deleted.
func (w *spillWriter[T]) Commit() (spillFile, error) {
	err := w.rw.Close()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return spillFile{}, errors.Join(fmt.Errorf("collection: finishing spill file %s (%d bytes written): %w",
			w.id, w.rw.BytesWritten(), err), w.Abort())
	}
	return spillFile{id: w.id, size: w.rw.BytesWritten(), records: w.rw.Records(),
		readCost: w.rw.ReadBufferBytes(), record: int64(w.rw.LargestRecord()), raw: w.rw.RawBytes()}, nil
}

// Abort closes and deletes the file (Spark's revertPartialWritesAndClose plus delete).
func (w *spillWriter[T]) Abort() error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Close())
		w.f = nil
	}
	if _, err := w.scope.Remove(w.id); err != nil {
		errs = append(errs, fmt.Errorf("collection: deleting spill file %s: %w", w.id, err))
	}
	return errors.Join(errs...)
}

// writeSpill drains it into a new spill file and closes it. On error the file is deleted and
// it is closed. It is Spark's spillMemoryIteratorToDisk.
func writeSpill[T any](scope *storage.Scope, cfg SpillConfig, c storage.Codec[T], it Iterator[T]) (spillFile, error) {
	defer it.Close()
	w, err := newSpillWriter(scope, scope.CreateTempLocal, cfg, c)
	if err != nil {
		return spillFile{}, err
	}
	for it.Next() {
		if err := w.Write(it.Value()); err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	if err := it.Err(); err != nil {
		return spillFile{}, errors.Join(err, w.Abort())
	}
	return w.Commit()
}

// rawSpillReader reads the records of a spill file in order and deletes the file when it ends
// or is closed (Spark's DiskMapIterator cleanup). Records alias the reader's buffer until the
// next call to next. release, if not nil, gives back the memory accounted for the reader's
// buffers (file.readCost) when it closes.
type rawSpillReader struct {
	scope   *storage.Scope
	file    spillFile
	f       storage.File
	rr      *storage.RecordReader
	release func()
}

func openRawSpill(scope *storage.Scope, file spillFile, release func()) (*rawSpillReader, error) {
	f, err := scope.Manager().Open(file.id)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, fmt.Errorf("collection: opening spill file %s (%d bytes): %w", file.id, file.size, err)
	}
	return &rawSpillReader{scope: scope, file: file, f: f, rr: storage.NewRecordReader(f, file.size), release: release}, nil
}

// next returns the next record and true, or false at the end, after closing and deleting the
// file. The error wraps the storage error (a failed read, or a failed deletion at the end).
func (r *rawSpillReader) next() ([]byte, bool, error) {
	if r.rr == nil {
		return nil, false, nil
	}
	rec, err := r.rr.Next()
	switch {
	case err == io.EOF:
		return nil, false, r.close()
	case err != nil:
		return nil, false, fmt.Errorf("collection: reading spill file %s (%d bytes, %d records read): %w",
			r.file.id, r.file.size, r.rr.Records(), err)
	}
	return rec, true, nil
}

// close releases the buffers, closes and deletes the file.
func (r *rawSpillReader) close() error {
	if r.rr == nil {
		return nil
	}
	var errs []error
	errs = append(errs, r.rr.Close(), r.f.Close())
	r.rr, r.f = nil, nil
	if r.release != nil {
		r.release()
		r.release = nil
	}
	if _, err := r.scope.Remove(r.file.id); err != nil {
		errs = append(errs, fmt.Errorf("collection: deleting spill file %s: %w", r.file.id, err))
	}
	return errors.Join(errs...)
}

// spillReader is an Iterator over the records of a spill file decoded with a codec (Spark's
// DiskMapIterator). keep makes decoded values safe to keep after the buffer is reused (see
// keeper). The file is deleted at the end and on Close.
type spillReader[T any] struct {
	raw  *rawSpillReader
	c    storage.Codec[T]
	keep func(T, []byte) T
	cur  T
	err  error
}

func openSpill[T any](scope *storage.Scope, file spillFile, c storage.Codec[T], keep func(T, []byte) T, release func()) (*spillReader[T], error) {
	raw, err := openRawSpill(scope, file, release)
	if err != nil {
		return nil, err
	}
	return &spillReader[T]{raw: raw, c: c, keep: keep}, nil
}

func (r *spillReader[T]) Next() bool {
	var zero T
	r.cur = zero
	if r.err != nil {
		return false
	}
	rec, ok, err := r.raw.next()
	if !ok {
		r.err = err
		return false
	}
	v, n, err := r.c.Decode(rec)
	switch {
	case err != nil:
		r.err = fmt.Errorf("collection: decoding record %d of spill file %s: %w", r.raw.rr.Records(), r.raw.file.id, err)
	case n != len(rec):
		r.err = fmt.Errorf("collection: record %d of spill file %s has %d bytes after its value: %w",
			r.raw.rr.Records(), r.raw.file.id, len(rec)-n, storage.ErrCorrupt)
	}
	if r.err != nil {
		return false
	}
	if r.keep != nil {
		v = r.keep(v, rec)
	}
	r.cur = v
	return true
}

func (r *spillReader[T]) Value() T   { return r.cur }
func (r *spillReader[T]) Err() error { return r.err }

func (r *spillReader[T]) Close() error {
	var zero T
	r.cur = zero
	return r.raw.close()
}

// keeper returns a function that makes a decoded key safe to keep when K is a string kind: a
// string whose bytes lie inside the record buffer (decoded by an aliasing codec such as
// storage.AliasStringCodec) is cloned. Other key types rely on their codec not aliasing, as
// every storage codec except the Alias ones guarantees. It returns nil when nothing can alias.
func keeper[K any]() func(K, []byte) K {
	if reflect.TypeFor[K]().Kind() != reflect.String {
		return nil
	}
	return func(k K, buf []byte) K {
		s := *(*string)(unsafe.Pointer(&k))
		if aliases(s, buf) {
			s = string([]byte(s))
			return *(*K)(unsafe.Pointer(&s))
		}
		return k
	}
}

// aliases reports whether s's bytes lie inside buf.
func aliases(s string, buf []byte) bool {
	if len(s) == 0 || len(buf) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= b && p < b+uintptr(len(buf))
}
