package tungsten

import (
	"context"
	"errors"

	"github.com/spillway/spillway/storage"
)

// mergePlan merges sorted runs (UnsafeSorterSpillMerger, bounded as UnsafeSorterBoundedSpillMerger
// bounds it).
type mergePlan struct {
	scope   *storage.Scope
	spill   storage.RecordWriterConfig
	factor  int // most files merged at once; <= 0: all
	prefix  PrefixComparator
	records RecordComparator
}

// merge returns a source over the runs and extra (nil for none), in order. While there are more
// runs than the merge factor, groups of factor runs are first merged into intermediate files
// (a group of one is carried forward), counting each round in *passes. Every run is deleted once
// read or when the source closes; on error every run is deleted.
func (p mergePlan) merge(ctx context.Context, runs []spillFile, extra source, passes *int64) (source, error) {
	removeAll := func(runs []spillFile) error {
		var errs []error
		for _, f := range runs {
			errs = append(errs, f.remove(p.scope))
		}
		return errors.Join(errs...)
	}
	for p.factor > 0 && len(runs) > p.factor {
		var next []spillFile
		merged := false
		for i := 0; i < len(runs); i += p.factor {
			group := runs[i:min(i+p.factor, len(runs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			f, err := p.mergeGroup(ctx, group)
			if err != nil {
				return nil, errors.Join(err, removeAll(next), removeAll(runs[i:]))
			}
			next = append(next, f)
			merged = true
		}
		runs = next
		*passes++
		if !merged {
			break
		}
	}
	srcs := make([]source, 0, len(runs)+1)
	for i, f := range runs {
		r, err := openSpill(p.scope, f, true)
		if err != nil {
			for _, s := range srcs {
				err = errors.Join(err, s.close())
			}
			return nil, errors.Join(err, removeAll(runs[i:]))
		}
		srcs = append(srcs, fileSource{r})
	}
	if extra != nil {
		srcs = append(srcs, extra)
	}
	m, err := newMerger(p.prefix, p.records, srcs)
	if err != nil {
		return nil, errors.Join(err, m.close())
	}
	return m, nil
}

// mergeGroup merges runs into a new run, deleting them.
func (p mergePlan) mergeGroup(ctx context.Context, group []spillFile) (spillFile, error) {
	src, err := p.merge(ctx, group, nil, new(int64))
	if err != nil {
		return spillFile{}, err
	}
	w, err := newSpillWriter(p.scope, p.spill)
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
func mergeRuns(ctx context.Context, scope *storage.Scope, spill storage.RecordWriterConfig, factor int,
	runs []spillFile, extra source, prefixIsKey bool, passes *int64) (source, error) {
	plan := mergePlan{scope: scope, spill: spill, factor: factor, prefix: PrefixBinary, records: compareKeys}
	if prefixIsKey {
		plan.records = nil
	}
	return plan.merge(ctx, runs, extra, passes)
}
