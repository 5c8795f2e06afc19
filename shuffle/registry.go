package shuffle

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/storage"
)

var (
	// ErrUnknownShuffle is returned for a shuffle id that is not registered (Spark's
	// "Shuffle ID X is not registered").
	ErrUnknownShuffle = errors.New("shuffle: unknown shuffle")
	// ErrMissingOutput is Spark's MetadataFetchFailedException "Missing an output location for
	// shuffle": a reduce task asked for a map output that was never registered or was removed.
	ErrMissingOutput = errors.New("shuffle: missing map output")
)

// MapStatus mirrors Spark's MapStatus: the result of one map task of a shuffle, naming its output
// files and the byte size of each reduce partition in them. Spark rounds sizes to a log scale
// (CompressedMapStatus) or to an average above 2000 partitions (HighlyCompressedMapStatus); here
// they are exact, which lets the reader check every index file against them.
type MapStatus struct {
	// ShuffleID is the shuffle the output belongs to.
	ShuffleID int
	// MapID names the output's files (Spark's mapId, the task attempt id since Spark 3.0): the data
	// file is ShuffleDataBlockID(ShuffleID, MapID, 0) and the index file ShuffleIndexBlockID(...).
	MapID int64
	// MapIndex is the map partition the output was computed from, in [0, numMaps).
	MapIndex int
	// Lengths is the size in bytes of each reduce partition's segment of the data file.
	Lengths []int64
	// Records is the number of records the map task wrote (see WriteMetrics.RecordsWritten).
	Records int64
	// BatchBytes is the batch byte limit the output's record writers used, which bounds the
	// buffers of the readers of its segments (but for records larger than a batch). 0 means
	// unknown: readers assume Config.Spill's.
	BatchBytes int
}

// DataBlock is the block id of the output's data file (Spark's ShuffleDataBlockId with
// NOOP_REDUCE_ID).
func (s MapStatus) DataBlock() storage.BlockID {
	return storage.ShuffleDataBlockID(s.ShuffleID, s.MapID, 0)
}

// IndexBlock is the block id of the output's index file (Spark's ShuffleIndexBlockId).
func (s MapStatus) IndexBlock() storage.BlockID {
	return storage.ShuffleIndexBlockID(s.ShuffleID, s.MapID, 0)
}

// Bytes is the length of the output's data file.
func (s MapStatus) Bytes() int64 {
	var n int64
	for _, l := range s.Lengths {
		n += l
	}
	return n
}

// BlockSize is one map output's segment of a reduce partition, as a reduce task fetches it
// (an element of Spark's getMapSizesByExecutorId result).
type BlockSize struct {
	// Block is ShuffleBlockID(shuffle, map id, reduce partition).
	Block storage.BlockID
	// MapIndex is the map partition that wrote the segment.
	MapIndex int
	// Size is the segment's length in bytes.
	Size int64
	// BatchBytes is the map output's MapStatus.BatchBytes.
	BatchBytes int
}

// MapOutputRegistry mirrors Spark's MapOutputTracker for one process: it records the MapStatus
// of every map task of every registered shuffle and tells a reduce task where its partition's
// segments are. It owns the map outputs' files from registration on: replacing an output or
// unregistering a shuffle deletes them (Spark's ShuffleManager.unregisterShuffle and
// IndexShuffleBlockResolver.removeDataByMap). It is safe for concurrent use.
type MapOutputRegistry struct {
	disk *storage.DiskBlockManager
	log  *zap.Logger

	mu       sync.Mutex
	shuffles map[int]*shuffleOutputs
}

type shuffleOutputs struct {
	numPartitions int
	outputs       []*MapStatus // by map index; nil: not available
}

// NewMapOutputRegistry returns an empty registry whose map outputs live in disk. A nil logger
// means zap.NewNop().
func NewMapOutputRegistry(disk *storage.DiskBlockManager, logger *zap.Logger) *MapOutputRegistry {
	if disk == nil {
		panic("shuffle: NewMapOutputRegistry needs a DiskBlockManager")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &MapOutputRegistry{disk: disk, log: logger.Named("shuffle"), shuffles: map[int]*shuffleOutputs{}}
}

// RegisterShuffle registers a shuffle with numMaps map tasks and numPartitions reduce partitions
// (MapOutputTrackerMaster.registerShuffle). Registering an id twice is an error.
func (r *MapOutputRegistry) RegisterShuffle(shuffleID, numMaps, numPartitions int) error {
	if shuffleID < 0 || numMaps < 0 || numPartitions < 1 {
		return fmt.Errorf("shuffle: cannot register shuffle %d with %d maps and %d partitions", shuffleID, numMaps, numPartitions)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.shuffles[shuffleID]; ok {
		return fmt.Errorf("shuffle: shuffle %d is already registered", shuffleID)
	}
	r.shuffles[shuffleID] = &shuffleOutputs{numPartitions: numPartitions, outputs: make([]*MapStatus, numMaps)}
	return nil
}

// RegisterMapOutput records the output of one map task (MapOutputTrackerMaster.registerMapOutput).
// The status must name a registered shuffle, a map index in range and one length per reduce
// partition. An output already registered for the same map index is replaced and its files are
// deleted, as a re-run map task replaces its predecessor's output.
func (r *MapOutputRegistry) RegisterMapOutput(status MapStatus) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.shuffles[status.ShuffleID]
	if !ok {
		return fmt.Errorf("%w %d", ErrUnknownShuffle, status.ShuffleID)
	}
	if status.MapIndex < 0 || status.MapIndex >= len(s.outputs) {
		return fmt.Errorf("shuffle: map index %d of shuffle %d not in [0, %d)", status.MapIndex, status.ShuffleID, len(s.outputs))
	}
	if len(status.Lengths) != s.numPartitions {
		return fmt.Errorf("shuffle: map output %d of shuffle %d has %d partition lengths, want %d",
			status.MapIndex, status.ShuffleID, len(status.Lengths), s.numPartitions)
	}
	var err error
	if old := s.outputs[status.MapIndex]; old != nil && old.MapID != status.MapID {
		err = r.removeFiles(old)
	}
	status.Lengths = slices.Clone(status.Lengths)
	s.outputs[status.MapIndex] = &status
	r.log.Debug("registered map output", zap.Int("shuffle", status.ShuffleID), zap.Int("map", status.MapIndex),
		zap.Stringer("block", status.DataBlock()), zap.String("bytes", humanize.IBytes(uint64(status.Bytes()))))
	return err
}

// MapStatuses returns a copy of the statuses of a shuffle's map outputs by map index; an entry is
// nil where no output is registered.
func (r *MapOutputRegistry) MapStatuses(shuffleID int) ([]*MapStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.shuffles[shuffleID]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownShuffle, shuffleID)
	}
	out := make([]*MapStatus, len(s.outputs))
	for i, st := range s.outputs {
		if st != nil {
			c := *st
			c.Lengths = slices.Clone(st.Lengths)
			out[i] = &c
		}
	}
	return out, nil
}

// NumPartitions returns the number of reduce partitions of a registered shuffle.
func (r *MapOutputRegistry) NumPartitions(shuffleID int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.shuffles[shuffleID]
	if !ok {
		return 0, fmt.Errorf("%w %d", ErrUnknownShuffle, shuffleID)
	}
	return s.numPartitions, nil
}

// MapSizesByReduce returns the segments of reduce partition reduceID in every map output of the
// shuffle, in map-index order, skipping empty ones (Spark's getMapSizesByExecutorId, which also
// omits zero-sized blocks). A map output that is not registered is ErrMissingOutput.
func (r *MapOutputRegistry) MapSizesByReduce(shuffleID, reduceID int) ([]BlockSize, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.shuffles[shuffleID]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownShuffle, shuffleID)
	}
	if reduceID < 0 || reduceID >= s.numPartitions {
		return nil, fmt.Errorf("shuffle: reduce partition %d of shuffle %d not in [0, %d)", reduceID, shuffleID, s.numPartitions)
	}
	var out []BlockSize
	for i, st := range s.outputs {
		if st == nil {
			return nil, fmt.Errorf("%w: shuffle %d, map %d, reduce partition %d", ErrMissingOutput, shuffleID, i, reduceID)
		}
		if n := st.Lengths[reduceID]; n > 0 {
			out = append(out, BlockSize{Block: storage.ShuffleBlockID(shuffleID, st.MapID, reduceID), MapIndex: i, Size: n, BatchBytes: st.BatchBytes})
		}
	}
	return out, nil
}

// UnregisterShuffle forgets a shuffle and deletes its map outputs' files
// (ShuffleManager.unregisterShuffle). An unknown id is not an error: there is nothing to do.
func (r *MapOutputRegistry) UnregisterShuffle(shuffleID int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unregisterLocked(shuffleID)
}

func (r *MapOutputRegistry) unregisterLocked(shuffleID int) error {
	s, ok := r.shuffles[shuffleID]
	if !ok {
		return nil
	}
	delete(r.shuffles, shuffleID)
	var errs []error
	for _, st := range s.outputs {
		if st != nil {
			errs = append(errs, r.removeFiles(st))
		}
	}
	return errors.Join(errs...)
}

// Close unregisters every shuffle, deleting all map outputs.
func (r *MapOutputRegistry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for id := range r.shuffles {
		errs = append(errs, r.unregisterLocked(id))
	}
	return errors.Join(errs...)
}

func (r *MapOutputRegistry) removeFiles(st *MapStatus) error {
	_, err1 := r.disk.Remove(st.DataBlock())
	_, err2 := r.disk.Remove(st.IndexBlock())
	return errors.Join(err1, err2)
}

// joinErrors is errors.Join that returns err itself when the others are nil, so err stays
// comparable (err == ctx.Err()).
func joinErrors(err error, others ...error) error {
	if other := errors.Join(others...); other != nil {
		return errors.Join(err, other)
	}
	return err
}
