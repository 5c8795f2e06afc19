package collection

import (
	"context"
	"errors"
	"fmt"
)

// The sorter keeps a record of every spill file it has not handed to a reader (its partitions'
// record counts and byte offsets, 16 bytes per partition, its id, and the DiskBlockManager's
// and scope's entries for the file), so that the memory of these records does not grow with the
// number of spills it compacts them (compactSpills): it keeps at most maxLiveSpills files, which
// is about spillRecordsBytes of records (at least minLiveSpills files, at most maxLiveSpillsCap).
const (
	spillRecordBytes  = 512 // a spill file's record, apart from its partitions
	spillRecordsBytes = 256 << 10
	minLiveSpills     = 8
	maxLiveSpillsCap  = 128
)

// maxLiveSpills is the most spill files a sorter of n partitions keeps before it compacts them.
func maxLiveSpills(n int) int {
	per := spillRecordBytes + 16*int64(n) + 8
	return int(min(max(spillRecordsBytes/per, minLiveSpills), maxLiveSpillsCap))
}

// compactSpills merges the smallest spill files (through multiPass with a limit, the memory of
// the readers and the writer acquired on the spill I/O consumer) until at most half of maxLive
// are left (in memory.Strict accounting: with memory.SparkAllowances the sorter keeps every
// spill file until it is read, as Spark does), so that the sorter's records of its files, and the files, do not grow with the
// number of spills: with the spills of a tiny budget merged k at a time, each record is
// rewritten about log_k(spills) times, as a multi-pass merge at the end would. Called while
// inserting, with the lock held; it releases it while merging. On error every spill file is
// deleted and the sorter is broken.
func (s *ExternalSorter[K, V, C]) compactSpills(ctx context.Context) error {
	spills := s.spills
	s.spills = nil
	mp := &multiPass[sorterSpill]{io: &s.io, cfg: s.sp.cfg, info: func(f sorterSpill) fileInfo { return f.file.info() },
		merge: s.mergeGroup, remove: s.removeSpill, limit: s.maxLive / 2}
	files, err := compactFiles(ctx, &s.sp, mp, spills)
	if err != nil {
		return s.fail(err) // Close, if it was the cause, deleted the files
	}
	s.spills = append(files, s.spills...)
	return nil
}

// afterSpill compacts the spill files when there are more than maxLive. Call with the lock held
// while inserting.
func (s *ExternalSorter[K, V, C]) afterSpill(ctx context.Context) error {
	if s.maxLive == 0 || len(s.spills) <= s.maxLive {
		return nil
	}
	if err := s.compactSpills(ctx); err != nil {
		return err
	}
	return s.checkUsable()
}

// mergeGroup merges a group of the sorter's spills into one, partition by partition, as the
// final merge would (a pass of a multi-pass merge), with the lock not held: the readers and the
// writer take their memory from res.
func (s *ExternalSorter[K, V, C]) mergeGroup(ctx context.Context, group []sorterSpill, res *reservation) (sorterSpill, error) {
	pi := &PartitionIterator[K, C]{ctx: ctx, n: s.n, part: -1}
	s.mergeSettings(pi)
	for _, f := range group {
		src, err := s.openSpill(f, res.take(f.file.readCost))
		if err != nil {
			return sorterSpill{}, errors.Join(err, pi.Close())
		}
		pi.sources = append(pi.sources, newCursor[K, C](src))
	}
	defer res.take(res.left)() // the writer's
	f, err := writeSorterSpill(s.disk, s.sp.cfg, s.codec, s.n, &partitionedRecords[K, C]{pi: pi})
	if err != nil {
		return sorterSpill{}, err
	}
	s.sp.Lock()
	defer s.sp.Unlock()
	if s.sp.Closed() {
		return sorterSpill{}, errors.Join(s.sp.closedError("while its spills were merged"), s.removeSpill(f))
	}
	s.files = appendLive(s.disk, s.files, f.file.id)
	return f, nil
}

// removeSpill deletes a spill file of the sorter (if it still exists).
func (s *ExternalSorter[K, V, C]) removeSpill(f sorterSpill) error {
	if _, err := s.disk.Remove(f.file.id); err != nil {
		return fmt.Errorf("collection: deleting spill file %s: %w", f.file.id, err)
	}
	return nil
}

// partitionedRecords is a PartitionIterator's records as one stream of PartitionedPairs.
type partitionedRecords[K comparable, C any] struct {
	pi   *PartitionIterator[K, C]
	recs Iterator[Pair[K, C]]
	cur  PartitionedPair[K, C]
}

func (r *partitionedRecords[K, C]) Next() bool {
	for {
		if r.recs != nil && r.recs.Next() {
			p := r.recs.Value()
			r.cur = PartitionedPair[K, C]{Partition: int32(r.pi.Partition()), Key: p.Key, Value: p.Value}
			return true
		}
		r.cur = PartitionedPair[K, C]{}
		if !r.pi.Next() {
			r.recs = nil
			return false
		}
		r.recs = r.pi.Records()
	}
}

func (r *partitionedRecords[K, C]) Value() PartitionedPair[K, C] { return r.cur }
func (r *partitionedRecords[K, C]) Err() error                   { return r.pi.Err() }
func (r *partitionedRecords[K, C]) Close() error                 { return r.pi.Close() }
