package baseline

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"
)

// Record is what the sort baselines sort: a string key and an integer value, ordered by key.
type Record struct {
	Key   string
	Value int64
}

// Compare orders records by key.
func Compare(a, b Record) int { return strings.Compare(a.Key, b.Key) }

// recordSize is the rough heap size a hand-written sorter would charge a record: the struct in
// the run slice plus the key's bytes.
func recordSize(r Record) int64 { return int64(unsafe.Sizeof(r)) + int64(len(r.Key)) }

// SortInMemory collects every record and sorts them with slices.SortFunc, then hands them to out
// in order.
func SortInMemory(in iter.Seq[Record], out func(Record) error) error {
	recs := slices.Collect(in)
	slices.SortFunc(recs, Compare)
	for _, r := range recs {
		if err := out(r); err != nil {
			return err
		}
	}
	return nil
}

// ExternalSortStats describes what ExternalSort wrote.
type ExternalSortStats struct {
	Runs  int
	Bytes int64
}

// ExternalSort is the hand-written external sort: it buffers records until their rough size
// reaches runBytes, sorts the buffer and writes it to a run file in dir (length-prefixed keys and
// varint values through a bufio.Writer), then merges the runs with a heap and hands the records
// to out in order. Without a single run file it sorts in memory. The run files are deleted before
// it returns, on every path.
func ExternalSort(ctx context.Context, dir string, runBytes int64, in iter.Seq[Record], out func(Record) error) (st ExternalSortStats, err error) {
	if runBytes <= 0 {
		return st, fmt.Errorf("baseline: run size must be positive, got %d", runBytes)
	}
	var (
		runs []string
		buf  []Record
		size int64
	)
	defer func() {
		for _, name := range runs {
			err = errors.Join(err, os.Remove(name))
		}
	}()
	flush := func() error {
		slices.SortFunc(buf, Compare)
		name := filepath.Join(dir, fmt.Sprintf("run-%d", len(runs)))
		runs = append(runs, name) // deleted by the deferred cleanup, also when writing fails
		n, err := writeRun(name, buf)
		st.Runs++
		st.Bytes += n
		clear(buf)
		buf, size = buf[:0], 0
		return err
	}
	i := 0
	for r := range in {
		if i++; i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		buf = append(buf, r)
		if size += recordSize(r); size >= runBytes {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if len(runs) == 0 {
		slices.SortFunc(buf, Compare)
		for _, r := range buf {
			if err := out(r); err != nil {
				return st, err
			}
		}
		return st, nil
	}
	if len(buf) > 0 {
		if err := flush(); err != nil {
			return st, err
		}
	}
	buf = nil
	return st, mergeRuns(runs, out)
}

func writeRun(name string, recs []Record) (int64, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var scratch [2 * binary.MaxVarintLen64]byte
	var n int64
	for _, r := range recs {
		b := binary.AppendUvarint(scratch[:0], uint64(len(r.Key)))
		w.Write(b)
		w.WriteString(r.Key)
		b = binary.AppendVarint(scratch[:0], r.Value)
		w.Write(b)
		n += int64(len(b)) + int64(len(r.Key))
	}
	err = w.Flush()
	return n, errors.Join(err, f.Close())
}

// runReader reads one run file.
type runReader struct {
	f   *os.File
	r   *bufio.Reader
	cur Record
}

func (rr *runReader) next() (bool, error) {
	n, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("baseline: reading %s: %w", rr.f.Name(), err)
	}
	key := make([]byte, n)
	if _, err := io.ReadFull(rr.r, key); err != nil {
		return false, fmt.Errorf("baseline: reading %s: %w", rr.f.Name(), err)
	}
	v, err := binary.ReadVarint(rr.r)
	if err != nil {
		return false, fmt.Errorf("baseline: reading %s: %w", rr.f.Name(), err)
	}
	rr.cur = Record{Key: string(key), Value: v}
	return true, nil
}

// runHeap orders run readers by their current record.
type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return Compare(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func mergeRuns(names []string, out func(Record) error) (err error) {
	var h runHeap
	var files []*os.File
	defer func() {
		for _, f := range files {
			err = errors.Join(err, f.Close())
		}
	}()
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		files = append(files, f)
		rr := &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10)}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, rr)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		rr := h[0]
		if err := out(rr.cur); err != nil {
			return err
		}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}
