package wordcount

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/examples/topk"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// JobConfig describes one word count run. Its zero value counts the default text.
type JobConfig struct {
	// Text is the generated text counted.
	Text Config
	// Partitions is the number of input splits and reduce partitions; 0 means twice the
	// executor's cores.
	Partitions int
	// Top is the number of most frequent words Result.Top lists; 0 means 10.
	Top int
	// CollectCounts makes Result.Counts hold every word's count.
	CollectCounts bool
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c JobConfig) Validate() error {
	var errs []error
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("wordcount: JobConfig.Partitions %d is negative", c.Partitions))
	}
	if c.Top < 0 {
		errs = append(errs, fmt.Errorf("wordcount: JobConfig.Top %d is negative", c.Top))
	}
	return errors.Join(append(errs, c.Text.Validate())...)
}

// WordCount is a word and its count.
type WordCount struct {
	Word  string
	Count int64
}

// Result is what Run returns.
type Result struct {
	// Top lists the most frequent words, most frequent first (ties alphabetically).
	Top []WordCount
	// Counts holds every word's count when JobConfig.CollectCounts is set.
	Counts map[string]int64
	// Distinct is the number of distinct words.
	Distinct int64
	// Spills counts the spills of the map-side sorters and the reduce-side maps;
	// MemoryBytesSpilled and DiskBytesSpilled sum their spill metrics.
	Spills             int64
	MemoryBytesSpilled int64
	DiskBytesSpilled   int64
	// PeakTaskExecution is the most execution memory one task held at once.
	PeakTaskExecution int64
}

// Run counts the words of the generated text on ex the way Spark's word count does it:
// text.map(w => (w, 1)).reduceByKey(_ + _) — a map stage whose SortWriter sums counts per word
// on the map side (an ExternalSorter), and a reduce stage whose readers sum the partial counts
// (an ExternalAppendOnlyMap). Both spill when the budget is short. The shuffle is unregistered
// when Run returns, on success and on error.
func Run(ctx context.Context, ex *executor.Executor, cfg JobConfig) (_ *Result, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	text, err := NewText(cfg.Text)
	if err != nil {
		return nil, err
	}
	parts := cfg.Partitions
	if parts == 0 {
		parts = 2 * ex.Config().Cores
	}
	top := cfg.Top
	if top == 0 {
		top = 10
	}
	sum := func(a, b int64) int64 { return a + b }
	dep := &shuffle.Dependency[string, int64, int64]{
		ShuffleID:   ex.Runner.NewShuffleID(),
		Partitioner: shuffle.NewHashPartitioner[string](parts),
		Aggregator: &shuffle.Aggregator[string, int64, int64]{
			CreateCombiner: func(v int64) int64 { return v }, MergeValue: sum, MergeCombiners: sum,
		},
		MapSideCombine: true,
		KeyCodec:       storage.StringCodec{},
		ValueCodec:     storage.VarintCodec[int64]{},
		CombinerCodec:  storage.VarintCodec[int64]{},
	}
	res := &Result{}
	var mu sync.Mutex
	peak := func(tc *shuffle.TaskContext) {
		tc.AddCompletionListener(func() error {
			p := tc.TaskManager().PeakExecution(0)
			mu.Lock()
			res.PeakTaskExecution = max(res.PeakTaskExecution, p)
			mu.Unlock()
			return nil
		})
	}
	metrics, err := shuffle.RunMapStage(ctx, ex.Runner, dep, parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[string, int64]], error) {
		peak(tc)
		next, stop := iter.Pull(text.Split(p, parts))
		return storage.FuncIterator(func() (collection.Pair[string, int64], bool, error) {
			w, ok := next()
			return collection.Pair[string, int64]{Key: w, Value: 1}, ok, nil
		}, func() error { stop(); return nil }), nil
	})
	for _, m := range metrics {
		res.Spills += m.Spills
		res.MemoryBytesSpilled += m.MemoryBytesSpilled
		res.DiskBytesSpilled += m.DiskBytesSpilled
	}
	if err != nil {
		return nil, fmt.Errorf("wordcount: map stage: %w", err)
	}
	defer func() { err = errors.Join(err, ex.Runner.Registry().UnregisterShuffle(dep.ShuffleID)) }()
	if cfg.CollectCounts {
		res.Counts = map[string]int64{}
	}
	err = ex.Runner.Run(ctx, parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		peak(tc)
		r, err := shuffle.NewReader(ctx, tc, dep, p)
		if err != nil {
			return err
		}
		defer r.Close()
		var local []WordCount
		var distinct int64
		var all []WordCount
		for r.Next() {
			kv := r.Value()
			wc := WordCount{Word: kv.Key, Count: kv.Value}
			distinct++
			local = topk.Push(local, wc, top, more)
			if cfg.CollectCounts {
				all = append(all, wc)
			}
		}
		if err := r.Err(); err != nil {
			return err
		}
		m := r.Metrics()
		mu.Lock()
		defer mu.Unlock()
		res.Spills += m.Spills
		res.MemoryBytesSpilled += m.MemoryBytesSpilled
		res.DiskBytesSpilled += m.DiskBytesSpilled
		res.Distinct += distinct
		for _, wc := range local {
			res.Top = topk.Push(res.Top, wc, top, more)
		}
		for _, wc := range all {
			res.Counts[wc.Word] = wc.Count
		}
		return r.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("wordcount: reduce stage: %w", err)
	}
	return res, nil
}

// more orders counts highest first, ties alphabetically.
func more(a, b WordCount) int {
	if c := cmp.Compare(b.Count, a.Count); c != 0 {
		return c
	}
	return cmp.Compare(a.Word, b.Word)
}
