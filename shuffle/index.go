package shuffle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/spillway/spillway/storage"
)

// The index file of a map output is Spark's (IndexShuffleBlockResolver): numPartitions+1
// big-endian int64 offsets into the data file, the first 0 and the last the data file's length;
// partition p is the byte range [offset[p], offset[p+1]).

// indexEntrySize is the size of one offset in an index file.
const indexEntrySize = 8

// encodeIndex returns the index file bytes for the given partition lengths.
func encodeIndex(lengths []int64) []byte {
	buf := make([]byte, 0, (len(lengths)+1)*indexEntrySize)
	var off int64
	buf = binary.BigEndian.AppendUint64(buf, 0)
	for _, l := range lengths {
		off += l
		buf = binary.BigEndian.AppendUint64(buf, uint64(off))
	}
	return buf
}

// decodeIndex parses and validates an index file of a map output with numPartitions partitions
// whose data file is dataLen bytes long (Spark's IndexShuffleBlockResolver.checkIndexAndDataFile).
// It returns the numPartitions+1 offsets. Anything inconsistent is ErrCorrupt.
func decodeIndex(b []byte, numPartitions int, dataLen int64) ([]int64, error) {
	if want := (numPartitions + 1) * indexEntrySize; len(b) != want {
		return nil, fmt.Errorf("shuffle: index of %d bytes, want %d for %d partitions: %w",
			len(b), want, numPartitions, storage.ErrCorrupt)
	}
	offsets := make([]int64, numPartitions+1)
	for i := range offsets {
		offsets[i] = int64(binary.BigEndian.Uint64(b[i*indexEntrySize:]))
		switch {
		case i == 0 && offsets[0] != 0:
			return nil, fmt.Errorf("shuffle: index starts at offset %d, want 0: %w", offsets[0], storage.ErrCorrupt)
		case i > 0 && offsets[i] < offsets[i-1]:
			return nil, fmt.Errorf("shuffle: index offset %d of partition %d is below the previous %d: %w",
				offsets[i], i, offsets[i-1], storage.ErrCorrupt)
		}
	}
	if last := offsets[numPartitions]; last != dataLen {
		return nil, fmt.Errorf("shuffle: index ends at offset %d but the data file holds %d bytes: %w",
			last, dataLen, storage.ErrCorrupt)
	}
	return offsets, nil
}

// writeIndexFile creates the index file of a map output and writes the offsets of lengths. On
// error the file is left to out's discard.
func writeIndexFile(out *mapOutput, id storage.BlockID, lengths []int64) error {
	f, err := out.create(id)
	if err != nil {
		return fmt.Errorf("shuffle: creating index file: %w", err)
	}
	buf := encodeIndex(lengths)
	n, err := f.Write(buf)
	if err == nil && n < len(buf) {
		err = fmt.Errorf("%w: %d of %d bytes", io.ErrShortWrite, n, len(buf))
	}
	if err = joinErrors(err, f.Close()); err != nil {
		return fmt.Errorf("shuffle: writing index file %s: %w", id, err)
	}
	return nil
}

// readIndexFile reads and validates the index file of a map output against its data file.
func readIndexFile(disk *storage.DiskBlockManager, index, data storage.BlockID, numPartitions int) ([]int64, error) {
	dataLen, err := fileLength(disk, data)
	if err != nil {
		return nil, err
	}
	f, err := disk.Open(index)
	if err != nil {
		return nil, fmt.Errorf("shuffle: opening index file: %w", err)
	}
	defer f.Close()
	// Read one byte more than expected so a too-long file is noticed without a Stat.
	want := (numPartitions + 1) * indexEntrySize
	b := make([]byte, want+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("shuffle: reading index file %s: %w", index, err)
	}
	offsets, err := decodeIndex(b[:n], numPartitions, dataLen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	return offsets, nil
}

// fileLength returns the length of a block's file.
func fileLength(disk *storage.DiskBlockManager, id storage.BlockID) (int64, error) {
	f, err := disk.Open(id)
	if err != nil {
		return 0, fmt.Errorf("shuffle: opening data file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("shuffle: stat of data file %s: %w", id, err)
	}
	return st.Size(), nil
}
