package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func newTestDiskStore(t *testing.T, fs FS) (*DiskStore, *DiskBlockManager) {
	t.Helper()
	dm := newTestDisk(t, DiskConfig{FS: fs})
	ds, err := NewDiskStore(dm, DiskStoreConfig{ChunkSize: 1000})
	require.NoError(t, err)
	return ds, dm
}

func TestDiskStorePutGetRemove(t *testing.T) {
	ds, dm := newTestDiskStore(t, nil)
	id := RDDBlockID(0, 1)
	data := bytes.Repeat([]byte("0123456789"), 350)
	size, err := ds.Put(id, func(w io.Writer) error {
		for i := 0; i < len(data); i += 100 { // streamed in pieces
			if _, err := w.Write(data[i : i+100]); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), size)
	require.True(t, ds.Contains(id))
	got, ok := ds.Size(id)
	require.True(t, ok)
	require.Equal(t, size, got)
	require.Equal(t, size, dm.BytesWritten())

	_, err = ds.Put(id, func(io.Writer) error { return nil })
	require.ErrorIs(t, err, ErrBlockExists)
	require.ErrorContains(t, err, "block rdd_0_1 is already present in the disk store")

	b, err := ds.GetBytes(id)
	require.NoError(t, err)
	require.Len(t, b.Chunks(), 4, "3500 bytes in chunks of 1000")
	all, err := b.Bytes(1 << 20)
	require.NoError(t, err)
	require.Equal(t, data, all)

	r, err := ds.Open(id)
	require.NoError(t, err)
	part := make([]byte, 10)
	_, err = r.ReadAt(part, 20)
	require.NoError(t, err)
	require.Equal(t, "0123456789", string(part))
	require.NoError(t, r.Close())

	id2 := RDDBlockID(0, 2)
	require.NoError(t, ds.PutBytes(id2, b))
	b2, err := ds.GetBytes(id2)
	require.NoError(t, err)
	all2, _ := b2.Bytes(1 << 20)
	require.Equal(t, data, all2)

	removed, err := ds.Remove(id)
	require.NoError(t, err)
	require.True(t, removed)
	removed, err = ds.Remove(id)
	require.NoError(t, err)
	require.False(t, removed)
	_, err = ds.Open(id)
	require.ErrorIs(t, err, ErrBlockNotFound)
	_, err = ds.GetBytes(id)
	require.ErrorIs(t, err, ErrBlockNotFound)

	empty := RDDBlockID(0, 3)
	_, err = ds.Put(empty, func(io.Writer) error { return nil })
	require.NoError(t, err)
	eb, err := ds.GetBytes(empty)
	require.NoError(t, err)
	require.Equal(t, int64(0), eb.Size())
}

// Records stored through a RecordWriter on Put's writer read back through Open.
func TestDiskStoreRecordBlock(t *testing.T) {
	ds, _ := newTestDiskStore(t, nil)
	id := RDDBlockID(4, 0)
	codec := NewPairCodec[string, int64](StringCodec{}, VarintCodec[int64]{})
	_, err := ds.Put(id, func(w io.Writer) error {
		rw, err := NewRecordWriter(w, RecordWriterConfig{BatchRecords: 100})
		if err != nil {
			return err
		}
		tw := NewTypedWriter(rw, codec)
		for i := range 1000 {
			if err := tw.Write(Pair[string, int64]{fmt.Sprint("k", i), int64(i)}); err != nil {
				return err
			}
		}
		return rw.Close()
	})
	require.NoError(t, err)
	r, err := ds.Open(id)
	require.NoError(t, err)
	defer r.Close()
	tr := NewTypedReader(NewRecordReader(r, r.Size()), codec)
	n := int64(0)
	for p, err := range tr.All() {
		require.NoError(t, err)
		require.Equal(t, Pair[string, int64]{fmt.Sprint("k", n), n}, p)
		n++
	}
	require.Equal(t, int64(1000), n)
}

// Every failing put returns a clear error and leaves no file behind.
func TestDiskStorePutFailuresLeaveNoFile(t *testing.T) {
	boom := errors.New("producer failed")
	tests := []struct {
		name  string
		fs    FS
		write func(io.Writer) error
		want  error
		msg   string
	}{
		{"producer error", nil, func(w io.Writer) error {
			_, _ = w.Write(make([]byte, 100<<10))
			return boom
		}, boom, "storage: writing block rdd_1_0 to disk (102400 bytes written): producer failed"},
		{"disk full", failWritesAfter(50 << 10), func(w io.Writer) error {
			_, err := w.Write(make([]byte, 200<<10))
			return err
		}, errInjected, "storage: writing block rdd_1_0 to disk"},
		{"disk full at flush", failWritesAfter(10), func(w io.Writer) error {
			_, err := w.Write(make([]byte, 100))
			return err
		}, errInjected, "storage: writing block rdd_1_0 to disk (0 bytes written)"},
		{"open fails", &faultyFS{openFault: func(string) error { return errInjected }}, func(io.Writer) error { return nil },
			errInjected, "storage: creating file for block rdd_1_0"},
		{"record writer on a full disk", failWritesAfter(40 << 10), func(w io.Writer) error {
			rw, err := NewRecordWriter(w, RecordWriterConfig{Compression: CompressionNone})
			if err != nil {
				return err
			}
			for range 10000 {
				if err := rw.Write(bytes.Repeat([]byte{'r'}, 64)); err != nil {
					return err
				}
			}
			return rw.Close()
		}, errInjected, "storage: writing batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, dm := newTestDiskStore(t, tt.fs)
			id := RDDBlockID(1, 0)
			_, err := ds.Put(id, tt.write)
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.msg)
			require.False(t, ds.Contains(id))
			require.Equal(t, 0, dm.Files())
			require.Empty(t, regularFiles(t, dm.LocalDirs()[0]))
		})
	}
	t.Run("producer panics", func(t *testing.T) {
		ds, dm := newTestDiskStore(t, nil)
		require.PanicsWithValue(t, "bad producer", func() {
			_, _ = ds.Put(RDDBlockID(1, 1), func(w io.Writer) error { panic("bad producer") })
		})
		require.Empty(t, regularFiles(t, dm.LocalDirs()[0]))
	})
}

func TestDiskStoreTruncatedFileIsCorrupt(t *testing.T) {
	ds, dm := newTestDiskStore(t, nil)
	id := RDDBlockID(2, 0)
	_, err := ds.Put(id, func(w io.Writer) error { _, err := w.Write(make([]byte, 100)); return err })
	require.NoError(t, err)
	path, err := dm.File(id)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, 60))
	_, err = ds.GetBytes(id)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "file of block rdd_2_0 has 60 bytes, 100 were written")
}

func TestDiskStoreConfigValidate(t *testing.T) {
	dm := newTestDisk(t, DiskConfig{})
	_, err := NewDiskStore(dm, DiskStoreConfig{BufferSize: 10})
	require.ErrorContains(t, err, "BufferSize 10 below the minimum 32768")
	_, err = NewDiskStore(dm, DiskStoreConfig{ChunkSize: -1})
	require.ErrorContains(t, err, "ChunkSize -1 is negative")
}

// A block whose file cannot be deleted stays stored, so its Remove can be retried.
func TestDiskStoreFailedRemoveKeepsTheBlock(t *testing.T) {
	ffs := &failingRemoveFS{}
	ds, dm := newTestDiskStore(t, ffs)
	id := RDDBlockID(0, 2)
	_, err := ds.Put(id, func(w io.Writer) error { _, err := w.Write([]byte("block")); return err })
	require.NoError(t, err)
	ffs.removes.Store(1)
	removed, err := ds.Remove(id)
	require.True(t, removed)
	require.ErrorIs(t, err, errInjected)
	require.True(t, ds.Contains(id), "still stored after the failed delete")
	require.True(t, dm.Contains(id))
	removed, err = ds.Remove(id)
	require.True(t, removed)
	require.NoError(t, err)
	require.False(t, ds.Contains(id))
	require.False(t, dm.Contains(id))
}
