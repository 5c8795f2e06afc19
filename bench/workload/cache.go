package workload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/spillway/spillway/bench/baseline"
	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/examples/stream"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// The cache workload's data: two datasets (RDDs) of two partitions each, cached one after the
// other and then read back, so caching the second evicts the first. With the default 2,000,000
// records and 16 MiB budget, a partition as values (about 20 MiB) is larger than memory; as
// serialized bytes (about 9 MiB) one fits.
const (
	cacheRDDs       = 2
	cachePartitions = 2
	cacheBlocks     = cacheRDDs * cachePartitions
	// presizeSample is the number of first records the presize strategy estimates from.
	presizeSample = 1024
	// cacheChunkSize is the chunk size of serialized blocks under every unroll strategy:
	// Spark's default (the 1 MiB unroll threshold), so that presizing, which raises the
	// threshold, does not also change how serialized blocks are allocated.
	cacheChunkSize = int(storage.DefaultUnrollMemoryThreshold)
)

// recordCodec encodes a cached record as its key and its zigzag-varint value.
var recordCodec = storage.FuncCodec[baseline.Record]{
	AppendFunc: func(dst []byte, r baseline.Record) []byte {
		dst = storage.StringCodec{}.Append(dst, r.Key)
		return binary.AppendVarint(dst, r.Value)
	},
	DecodeFunc: func(src []byte) (baseline.Record, int, error) {
		k, n, err := storage.StringCodec{}.Decode(src)
		if err != nil {
			return baseline.Record{}, 0, err
		}
		v, m := binary.Varint(src[n:])
		if m <= 0 {
			return baseline.Record{}, 0, fmt.Errorf("%w: bad value varint", storage.ErrCorrupt)
		}
		return baseline.Record{Key: k, Value: v}, n + m, nil
	},
}

// cacheData describes the partitions: block i is partition i%cachePartitions of RDD
// i/cachePartitions, and its records are generated from the seed and i, so any partition can be
// computed again (and checked) without being kept.
type cacheData struct {
	seed    uint64
	records int64
}

func (d cacheData) id(i int) storage.BlockID {
	return storage.RDDBlockID(i/cachePartitions, i%cachePartitions)
}

func (d cacheData) count(i int) int64 {
	from, to := stream.SplitRange(d.records, i, cacheBlocks)
	return to - from
}

// gen computes block i; it reports progress to env unless env is nil.
func (d cacheData) gen(env *harness.Env, i int) *recordGen {
	return newRecordGen(env, d.seed+uint64(i+1)*0x9e3779b97f4a7c15, d.count(i))
}

// check reads it to the end and closes it, verifying it yields exactly block i's records.
func (d cacheData) check(it storage.Iterator[baseline.Record], i int) (err error) {
	defer func() { err = errors.Join(err, it.Close()) }()
	want := d.gen(nil, i)
	var n int64
	for it.Next() {
		if !want.Next() {
			return fmt.Errorf("workload: block %s has more than its %d records", d.id(i), want.n)
		}
		if got := it.Value(); got != want.Value() {
			return fmt.Errorf("workload: record %d of block %s is %v, want %v", n, d.id(i), got, want.Value())
		}
		n++
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("workload: reading block %s: %w", d.id(i), err)
	}
	if want.Next() {
		return fmt.Errorf("workload: block %s has %d records, want %d", d.id(i), n, want.n)
	}
	return nil
}

// collect computes block i into a slice.
func (d cacheData) collect(env *harness.Env, i int) []baseline.Record { return collect(d.gen(env, i)) }

// collect reads g into a slice.
func collect(g *recordGen) []baseline.Record {
	vals := make([]baseline.Record, 0, g.n)
	for g.Next() {
		vals = append(vals, g.Value())
	}
	return vals
}

// estimate is the memory vals take when stored at level, scaled to count records: their heap
// size as values (estimator.Estimate), or the bytes of their record-format encoding in whole
// chunks.
func estimate(vals []baseline.Record, level storage.Level, count int64) int64 {
	scale := func(n int64) int64 { return n * count / int64(max(len(vals), 1)) }
	if level.Deserialized() {
		return max(scale(estimator.Estimate(vals)), 1)
	}
	var size int64
	var buf []byte
	for _, v := range vals {
		buf = recordCodec.Append(buf[:0], v)
		size += int64(len(buf) + 1) // a key under 128 bytes: a one-byte length prefix
	}
	size = scale(size) + (count/10_000+1)*storage.BatchHeaderSize // a batch per 10,000 records, Spark's batchSize
	chunk := int64(cacheChunkSize)
	return (size + chunk - 1) / chunk * chunk
}

// storeConfig is the MemoryStoreConfig of an unroll strategy. The unroll threshold is per
// BlockManager in package storage, not per put, so presize and materialise set it once for the
// run from the first block; every block has the same record count (±1) and distribution.
func (d cacheData) storeConfig(u harness.Unroll, level storage.Level) storage.MemoryStoreConfig {
	switch u {
	case harness.UnrollPresize:
		g := d.gen(nil, 0)
		g.n = min(g.n, presizeSample)
		return storage.MemoryStoreConfig{UnrollMemoryThreshold: estimate(collect(g), level, d.count(0)), ChunkSize: cacheChunkSize}
	case harness.UnrollMaterialise:
		// One reservation of the whole estimate, and no size checks after it: the check was
		// made once, on the materialised values, as in Spark before SPARK-1777. (The put still
		// charges the precise size when it ends.)
		vals := d.collect(nil, 0)
		return storage.MemoryStoreConfig{UnrollMemoryThreshold: estimate(vals, level, int64(len(vals))),
			UnrollMemoryCheckPeriod: math.MaxInt, ChunkSize: cacheChunkSize}
	}
	return storage.MemoryStoreConfig{}
}

// caching caches two datasets, each about as large as the input divided by two, one after the
// other at the strategy's storage level through a BlockManager (GetOrElseUpdate, as an RDD's
// iterator does), then reads every partition back (a second action): blocks that were not kept
// are recomputed, blocks on disk are read from disk. Every read is checked against the
// generated records.
func caching(p Params) Workload {
	d := cacheData{seed: p.Seed, records: p.Records}
	var strategies []harness.Strategy
	for _, s := range []struct {
		level  string
		unroll []harness.Unroll
	}{
		{"MEMORY_ONLY", []harness.Unroll{"", harness.UnrollMaterialise, harness.UnrollPresize}},
		{"MEMORY_ONLY_SER", []harness.Unroll{"", harness.UnrollPresize}},
		{"MEMORY_AND_DISK", []harness.Unroll{"", harness.UnrollMaterialise}},
		{"MEMORY_AND_DISK_SER", []harness.Unroll{""}},
		{"DISK_ONLY", []harness.Unroll{""}},
		{"OFF_HEAP", []harness.Unroll{""}},
	} {
		for _, u := range s.unroll {
			strategies = append(strategies, harness.Strategy{Level: s.level, Unroll: u})
		}
	}
	return Workload{
		Name:        "cache",
		Description: "cache two datasets larger than memory, partition by partition, at a storage level (BlockManager.GetOrElseUpdate), then read them back",
		Strategies:  strategies,
		Baselines: []Baseline{{Name: "[][]T", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
			var parts [cacheBlocks][]baseline.Record
			for range 2 { // two actions: compute and keep, then read what was kept
				for i := range parts {
					if parts[i] == nil {
						parts[i] = d.collect(env, i)
					}
					if err := d.check(storage.SliceIterator(parts[i]), i); err != nil {
						return p.Records, err
					}
					if err := ctx.Err(); err != nil {
						return p.Records, err
					}
				}
			}
			return p.Records, nil
		}}},
		Run: func(ctx context.Context, env *harness.Env) (int64, error) {
			return p.Records, d.run(ctx, env)
		},
	}
}

// run is the Spillway run of the cache workload.
func (d cacheData) run(ctx context.Context, env *harness.Env) (err error) {
	level, err := env.Strategy.StorageLevel()
	if err != nil {
		return err
	}
	unroll := env.Strategy.Unroll
	bm, err := storage.NewBlockManager(storage.Config{
		Memory: env.Memory, Disk: env.Disk, MemoryStore: d.storeConfig(unroll, level), Logger: env.Logger,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bm.Close()) }()
	ms := bm.MemoryStore()
	var toDisk, diskBytes atomic.Int64 // blocks written to disk, and their bytes
	env.AddCounters(func() harness.Counters {
		return harness.Counters{Spills: toDisk.Load(), SpillBytes: diskBytes.Load(), Evictions: ms.Metrics().EvictedBlocks}
	})
	var onDisk [cacheBlocks]bool
	// countDisk notes the blocks that reached disk since the last call (by a put, or dropped
	// there by an eviction); a block stays on disk until it is removed.
	countDisk := func() {
		for i := range onDisk {
			if st, ok := bm.Status(d.id(i)); ok && st.OnDisk && !onDisk[i] {
				onDisk[i] = true
				toDisk.Add(1)
				diskBytes.Add(st.DiskSize)
			}
		}
	}

	const task memory.TaskID = 1
	defer func() { err = errors.Join(err, bm.EndTask(task)) }()
	for range 2 { // two actions over both datasets: the first computes and caches, the second reads
		for i := range cacheBlocks {
			it, _, err := storage.GetOrElseUpdate(ctx, bm, task, d.id(i), level, recordCodec, func() (storage.Iterator[baseline.Record], error) {
				if unroll == harness.UnrollMaterialise {
					return storage.SliceIterator(d.collect(env, i)), nil
				}
				return d.gen(env, i), nil
			})
			if err != nil {
				return err
			}
			if err := d.check(it, i); err != nil {
				return err
			}
			countDisk()
		}
	}
	for i := range cacheBlocks {
		if _, err := bm.Remove(ctx, task, d.id(i)); err != nil {
			return err
		}
	}
	return nil
}
