package tungsten

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/storage"
)

// mergePlan merges sorted runs (UnsafeSorterSpillMerger, bounded as UnsafeSorterBoundedSpillMerger
// bounds it, and by memory).
type mergePlan struct {
	scope   *storage.Scope
	io      *spillIO
	spill   storage.RecordWriterConfig // BatchBytes defaulted
	factor  int                        // most files merged at once; <= 0: all
	prefix  PrefixComparator
	records RecordComparator
	// keyed: the records are key-value records ordered by key, every key sharing its first skip
	// bytes; the final merge is a keyMerger, which orders them by their 8 bytes past those
	// rather than by the runs' prefixes, the keys' first 8 bytes.
	keyed bool
	skip  int
}

func removeAll(scope *storage.Scope, runs []spillFile) error {
	var errs []error
	for _, f := range runs {
		errs = append(errs, f.remove(scope))
	}
	return errors.Join(errs...)
}

// merge returns a source over the runs and extra (nil for none), in order. It opens a reader of
// every run at once only when the merge factor and, in memory.Strict accounting, the memory
// allow: it asks the spill I/O consumer for the readers' buffers (at most the task's merge
// share, or what two readers and a writer need if more), and while the grant or the factor
// falls short it first merges the runs in rounds, k consecutive runs into one intermediate file
// (k readers and a writer fit the grant, k ≥ 2; a group of one is carried forward), counting
// each round in *passes. The final merge's readers hold their buffers' memory until each of them
// ends. Every run is deleted once read or when the source closes; on error every run is
// deleted. When not even two readers and a writer can be had, the error wraps
// memory.ErrOutOfMemory.
func (p mergePlan) merge(ctx context.Context, runs []spillFile, extra source, passes *int64) (source, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, removeAll(p.scope, runs))
		}
		var total int64
		for _, f := range runs {
			total += f.readCost
		}
		fits := p.factor <= 0 || len(runs) <= p.factor
		want := total
		if p.io.Strict() && (!fits || total > p.io.MergeShare()) {
			want = max(p.io.MergeShare(), p.groupCost(runs, 2))
		}
		got, err := p.io.Acquire(ctx, want)
		if err != nil {
			return nil, errors.Join(err, removeAll(p.scope, runs))
		}
		if fits && got >= total {
			return p.open(runs, extra, got, true)
		}
		k := len(runs)
		if p.factor > 0 {
			k = min(k, p.factor)
		}
		if p.io.Strict() {
			k = min(k, p.groupSize(runs, got))
		}
		if k < 2 {
			p.io.Release(got)
			return nil, errors.Join(p.io.outOfMemory(fmt.Sprintf("merging %d spill files (readers of all need %s)",
				len(runs), humanize.IBytes(uint64(total))), p.groupCost(runs, 2), got), removeAll(p.scope, runs))
		}
		runs, err = p.round(ctx, runs, k)
		p.io.Release(got)
		if err != nil {
			return nil, err
		}
		*passes++
	}
}

// groupCost bounds the memory of merging k of runs into a file: readers of the k most costly
// runs and a writer of the largest record.
func (p mergePlan) groupCost(runs []spillFile, k int) int64 {
	costs, n := p.costs(runs)
	for _, c := range costs[:min(k, len(costs))] {
		n += c
	}
	return n
}

// groupSize is the most runs whose merge into a file fits in grant (by groupCost).
func (p mergePlan) groupSize(runs []spillFile, grant int64) int {
	costs, n := p.costs(runs)
	for k, c := range costs {
		if n += c; n > grant {
			return k
		}
	}
	return len(costs)
}

// costs returns the runs' reader costs, largest first, and a writer's cost for their largest
// record.
func (p mergePlan) costs(runs []spillFile) ([]int64, int64) {
	costs := make([]int64, len(runs))
	var record int64
	for i, f := range runs {
		costs[i], record = f.readCost, max(record, f.record)
	}
	slices.SortFunc(costs, func(a, b int64) int { return cmp.Compare(b, a) })
	return costs, writerCost(p.spill, record)
}

// round merges groups of k consecutive runs into intermediate files, deleting them; on error
// every run and every file written is deleted.
func (p mergePlan) round(ctx context.Context, runs []spillFile, k int) ([]spillFile, error) {
	var next []spillFile
	for i := 0; i < len(runs); i += k {
		group := runs[i:min(i+k, len(runs))]
		if len(group) == 1 {
			next = append(next, group[0])
			continue
		}
		f, err := p.mergeGroup(ctx, group)
		if err != nil {
			return nil, errors.Join(err, removeAll(p.scope, next), removeAll(p.scope, runs[i+len(group):]))
		}
		next = append(next, f)
	}
	return next, nil
}

// open merges a reader of every run with extra. The readers take held bytes of spill I/O memory,
// each releasing its file's readCost when it ends; the rest is released now. The final merge
// orders key-value records by their bytes past p.skip.
func (p mergePlan) open(runs []spillFile, extra source, held int64, final bool) (source, error) {
	srcs := make([]source, 0, len(runs)+1)
	for i, f := range runs {
		n := min(f.readCost, held)
		held -= n
		r, err := openSpill(p.scope, f, true, p.io.piece(n))
		if err != nil {
			p.io.Release(held)
			for _, s := range srcs {
				err = errors.Join(err, s.close())
			}
			return nil, errors.Join(err, removeAll(p.scope, runs[i:]))
		}
		srcs = append(srcs, fileSource{r})
	}
	p.io.Release(held)
	if extra != nil {
		srcs = append(srcs, extra)
	}
	if len(srcs) == 1 {
		return srcs[0], nil // one sorted source: nothing to merge (an in-memory sort)
	}
	if final && p.keyed {
		m, err := newKeyMerger(srcs, p.skip)
		if err != nil {
			return nil, errors.Join(err, m.close())
		}
		return m, nil
	}
	m, err := newMerger(p.prefix, p.records, srcs)
	if err != nil {
		return nil, errors.Join(err, m.close())
	}
	return m, nil
}

// mergeGroup merges runs into a new run, deleting them; merge's grant covers its readers and
// writer.
func (p mergePlan) mergeGroup(ctx context.Context, group []spillFile) (spillFile, error) {
	src, err := p.open(group, nil, 0, false)
	if err != nil {
		return spillFile{}, err
	}
	newWriter := newKeyedSpillWriter // the merge of keyed runs is keyed
	for _, f := range group {
		if !f.keyed {
			newWriter = newSpillWriter
		}
	}
	w, err := newWriter(p.scope, p.spill)
	if err != nil {
		return spillFile{}, errors.Join(err, src.close())
	}
	for n := 0; src.next(); n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return spillFile{}, errors.Join(ctx.Err(), w.Abort(), src.close())
		}
		if err := w.write(src.record(), src.prefix()); err != nil {
			return spillFile{}, errors.Join(err, w.Abort(), src.close())
		}
	}
	if err := errors.Join(src.err(), src.close()); err != nil {
		return spillFile{}, errors.Join(err, w.Abort())
	}
	return w.commit()
}

// mergeRuns merges key-value runs by key; by prefix alone when the prefix is the whole key.
func mergeRuns(ctx context.Context, scope *storage.Scope, b *base, factor int, runs []spillFile, extra source, prefixIsKey bool,
	passes *int64) (source, error) {
	plan := mergePlan{scope: scope, io: &b.writer.io, spill: b.spill, factor: factor, prefix: PrefixBinary, records: compareKeys}
	if prefixIsKey {
		plan.records = nil
	}
	return plan.merge(ctx, runs, extra, passes)
}

// mergeKeyRuns merges key-value runs by key, every key sharing its first skip bytes (a start
// the runs' prefixes, the keys' first 8 bytes, do not tell apart): the final merge (keyMerger)
// orders the records by their key's 8 bytes past it, then by key.
func mergeKeyRuns(ctx context.Context, scope *storage.Scope, b *base, factor int, runs []spillFile, extra source, skip int,
	passes *int64) (source, error) {
	plan := mergePlan{scope: scope, io: &b.writer.io, spill: b.spill, factor: factor, prefix: PrefixBinary, records: compareKeys,
		keyed: true, skip: skip}
	return plan.merge(ctx, runs, extra, passes)
}
