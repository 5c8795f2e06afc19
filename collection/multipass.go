package collection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// ioMemory is a collection's memory.IOConsumer: the execution memory of its spill readers'
// and merge writers, acquired before they are allocated in Strict accounting.
type ioMemory struct{ memory.IOConsumer }

// outOfMemory is the error of a merge that cannot get memory for two readers (and a writer):
// it wraps memory.ErrOutOfMemory and carries the task's usage report.
func (m *ioMemory) outOfMemory(what string, need, got int64) error {
	return fmt.Errorf("%w: collection: %s needs %s for %s, got %s\n%s", memory.ErrOutOfMemory, m,
		humanize.IBytes(uint64(need)), what, humanize.IBytes(uint64(got)), m.TaskManager().UsageReport())
}

// reservation is memory acquired through an ioMemory and handed out piecewise to readers and
// writers, each of which releases its piece when it closes.
type reservation struct {
	io   *ioMemory
	left int64
}

// take moves n bytes (at most what is left) out of the reservation and returns the function
// that releases them, once (later calls do nothing).
func (r *reservation) take(n int64) func() {
	n = min(n, r.left)
	r.left -= n
	io := r.io
	return func() {
		io.Release(n)
		n = 0
	}
}

// close releases what was not taken.
func (r *reservation) close() {
	r.io.Release(r.left)
	r.left = 0
}

// Per-file memory of the merge, in bytes.
const (
	// writerSlack covers the rounding of the record writer's batch growth.
	writerSlack = 8 << 10
	// zstdEncoderBytes is the state of a zstd record writer (see storage.RecordWriter).
	zstdEncoderBytes = 2 << 20
)

// writerCost bounds the buffers of a record writer of cfg writing raw uncompressed bytes in
// records of at most record bytes: its file buffer, its batch (up to BatchBytes plus one
// record, or raw if smaller; append may grow it by a quarter) and the compressed copy (about as
// large again), plus a zstd encoder's state.
func writerCost(cfg SpillConfig, record, raw int64) int64 {
	batch := min(int64(cfg.BatchBytes)+record, raw)
	n := storage.DefaultBufferSize + 5*batch/2 + writerSlack
	if cfg.Compression == storage.CompressionZstd {
		n += zstdEncoderBytes
	}
	return n
}

// mergeRun is one input of a multi-pass merge: a spill file, its reader's cost and the merge
// pass that wrote it (0 for a spill).
type mergeRun[F any] struct {
	file F
	info fileInfo
	gen  int
}

// fileInfo is what the merge planner needs to know of a spill file.
type fileInfo struct {
	readCost int64 // memory of a reader of the whole file (storage.RecordWriter.ReadBufferBytes)
	record   int64 // the largest record
	raw      int64 // uncompressed bytes
	size     int64 // bytes on disk
}

// multiPass merges spill files of type F in passes until the task can hold a reader for every
// one of them at once. merge merges a group into one new file, taking each reader's and the
// writer's memory from the reservation it is given (readers release theirs, and delete their
// files, when they close); remove deletes a file.
type multiPass[F any] struct {
	io     *ioMemory
	cfg    SpillConfig
	info   func(F) fileInfo
	merge  func(ctx context.Context, group []F, res *reservation) (F, error)
	remove func(F) error
	// limit, if positive, makes reduce a compaction: it merges the smallest files of the
	// oldest pass until at most limit are left, whatever the memory, and holds nothing for
	// their readers.
	limit int
}

// reduce returns files, or the files that replaced them, together with a reservation covering a
// reader of each (to be taken by the final merge's readers) and the number of merge passes, the
// final one included. In Strict accounting it asks for at most the ioMemory's mergeShare (or
// what two readers and a writer need, if more). While the grant does not cover every reader at
// once, it merges the smallest files of the oldest pass into one, as many as the grant allows
// with a writer (at least two), and asks again. If not even two readers and a writer can be
// had it returns an error wrapping memory.ErrOutOfMemory. On error every file is deleted and
// nothing is held. With a limit it is a compaction instead: while more than limit files are
// left it merges the smallest files of the oldest pass, just enough of them to get down to the
// limit (fewer if the grant does not cover them), and it returns an empty reservation and 0
// passes. reduce owns files: it clears the slice, so that merged files' records do not stay
// reachable.
func (p *multiPass[F]) reduce(ctx context.Context, files []F) ([]F, *reservation, int, error) {
	if len(files) == 0 {
		return nil, &reservation{io: p.io}, 0, nil
	}
	runs := make([]mergeRun[F], len(files))
	for i, f := range files {
		runs[i] = mergeRun[F]{file: f, info: p.info(f)}
	}
	clear(files) // the runs own the files now: merged ones must not stay reachable
	fail := func(err error) ([]F, *reservation, int, error) {
		var errs []error
		for _, r := range runs {
			errs = append(errs, p.remove(r.file))
		}
		return nil, nil, 0, errors.Join(append([]error{err}, errs...)...)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var total int64
		for _, r := range runs {
			total += r.info.readCost
		}
		over := p.limit > 0 && len(runs) > p.limit
		if p.limit > 0 && !over {
			out := make([]F, len(runs))
			for i, r := range runs {
				out[i] = r.file
			}
			return out, &reservation{io: p.io}, 0, nil
		}
		want := total
		switch {
		case p.io.Strict():
			if share := p.io.MergeShare(); over || total > share {
				p.sortRuns(runs)
				want = max(share, p.mergeCost(runs))
			}
		case over:
			want = math.MaxInt64 // not accounted: the group is as large as the limit asks
		}
		got, err := p.io.Acquire(ctx, want)
		if err != nil {
			return fail(err)
		}
		if !over && got >= total {
			out := make([]F, len(runs))
			passes := 0
			for i, r := range runs {
				out[i] = r.file
				passes = max(passes, r.gen+1)
			}
			return out, &reservation{io: p.io, left: got}, passes, nil
		}
		p.sortRuns(runs)
		n, need := 0, int64(0)
		var readers, record, raw int64
		most := len(runs) // a compaction merges just enough files to get down to the limit
		if over {
			most = len(runs) - p.limit + 1
		}
		for _, r := range runs[:most] {
			c := readers + r.info.readCost + writerCost(p.cfg, max(record, r.info.record), raw+r.info.raw)
			if c > got {
				break
			}
			n, need = n+1, c
			readers, record, raw = readers+r.info.readCost, max(record, r.info.record), raw+r.info.raw
		}
		if n < 2 {
			p.io.Release(got)
			return fail(p.io.outOfMemory(fmt.Sprintf("merging %d spill files (%s on disk; readers of all need %s)",
				len(runs), humanize.IBytes(uint64(sizeOf(runs))), humanize.IBytes(uint64(total))), p.mergeCost(runs), got))
		}
		p.io.Release(got - need)
		res := &reservation{io: p.io, left: need}
		group := make([]F, n)
		gen := 0
		for i, r := range runs[:n] {
			group[i] = r.file
			gen = max(gen, r.gen)
		}
		f, err := p.merge(ctx, group, res)
		res.close()
		if err != nil {
			return fail(err)
		}
		clear(runs[:n]) // merged and deleted: their records must not stay reachable
		runs = append(runs[n:], mergeRun[F]{file: f, info: p.info(f), gen: gen + 1})
	}
}

// appendLive appends id to ids, the spill files a collection created and must delete when it
// closes. When ids is full it first drops the files scope deleted since (merged, or read to
// their end), so that the list follows the live files, not every file ever written.
func appendLive(scope *storage.Scope, ids []storage.BlockID, id storage.BlockID) []storage.BlockID {
	if len(ids) > 0 && len(ids) == cap(ids) {
		ids = slices.DeleteFunc(ids, func(x storage.BlockID) bool { return !scope.Contains(x) })
		if len(ids) < cap(ids)/4 {
			ids = append(make([]storage.BlockID, 0, 2*len(ids)+1), ids...)
		}
	}
	return append(ids, id)
}

// sortRuns puts the runs to merge first first: the smallest files of the oldest pass.
func (p *multiPass[F]) sortRuns(runs []mergeRun[F]) {
	slices.SortStableFunc(runs, func(a, b mergeRun[F]) int {
		return cmp.Or(cmp.Compare(a.gen, b.gen), cmp.Compare(a.info.size, b.info.size))
	})
}

// mergeCost is the least a merge of runs needs: readers of the first two runs and a writer of
// their records (a reader of the only run, if there is one).
func (p *multiPass[F]) mergeCost(runs []mergeRun[F]) int64 {
	if len(runs) < 2 {
		return runs[0].info.readCost
	}
	a, b := runs[0].info, runs[1].info
	return a.readCost + b.readCost + writerCost(p.cfg, max(a.record, b.record), a.raw+b.raw)
}

func sizeOf[F any](runs []mergeRun[F]) int64 {
	var n int64
	for _, r := range runs {
		n += r.info.size
	}
	return n
}

// ctxIterator stops an iterator when ctx is done, checking every cancelCheckPeriod/64 elements.
type ctxIterator[T any] struct {
	Iterator[T]
	ctx context.Context
	n   int
	err error
}

func (c *ctxIterator[T]) Next() bool {
	if c.err != nil {
		return false
	}
	if c.n++; c.n%64 == 0 {
		if c.err = c.ctx.Err(); c.err != nil {
			return false
		}
	}
	return c.Iterator.Next()
}

func (c *ctxIterator[T]) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.Iterator.Err()
}
