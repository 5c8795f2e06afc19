package shuffle

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

func newTestRegistry(t *testing.T) (*MapOutputRegistry, *storage.DiskBlockManager) {
	t.Helper()
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, disk.Close()) })
	return NewMapOutputRegistry(disk, nil), disk
}

// touchOutput creates the files of a map output so the registry has something to delete.
func touchOutput(t *testing.T, disk *storage.DiskBlockManager, st MapStatus) {
	t.Helper()
	for _, id := range []storage.BlockID{st.DataBlock(), st.IndexBlock()} {
		f, err := disk.Create(id)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
}

func TestRegistry(t *testing.T) {
	reg, disk := newTestRegistry(t)
	require.NoError(t, reg.RegisterShuffle(3, 2, 4))
	require.Error(t, reg.RegisterShuffle(3, 2, 4), "registered twice")

	_, err := reg.MapSizesByReduce(3, 0)
	require.ErrorIs(t, err, ErrMissingOutput)
	_, err = reg.MapSizesByReduce(9, 0)
	require.ErrorIs(t, err, ErrUnknownShuffle)

	for _, bad := range []MapStatus{
		{ShuffleID: 9, MapIndex: 0, Lengths: make([]int64, 4)},
		{ShuffleID: 3, MapIndex: 2, Lengths: make([]int64, 4)},
		{ShuffleID: 3, MapIndex: -1, Lengths: make([]int64, 4)},
		{ShuffleID: 3, MapIndex: 0, Lengths: make([]int64, 3)},
	} {
		require.Error(t, reg.RegisterMapOutput(bad), "%+v", bad)
	}

	a := MapStatus{ShuffleID: 3, MapID: 10, MapIndex: 0, Lengths: []int64{5, 0, 7, 1}}
	b := MapStatus{ShuffleID: 3, MapID: 11, MapIndex: 1, Lengths: []int64{0, 0, 2, 0}}
	touchOutput(t, disk, a)
	touchOutput(t, disk, b)
	require.NoError(t, reg.RegisterMapOutput(a))
	require.NoError(t, reg.RegisterMapOutput(b))

	got, err := reg.MapSizesByReduce(3, 2)
	require.NoError(t, err)
	require.Equal(t, []BlockSize{
		{Block: storage.ShuffleBlockID(3, 10, 2), MapIndex: 0, Size: 7},
		{Block: storage.ShuffleBlockID(3, 11, 2), MapIndex: 1, Size: 2},
	}, got)
	got, err = reg.MapSizesByReduce(3, 1)
	require.NoError(t, err)
	require.Empty(t, got, "empty segments are skipped")
	_, err = reg.MapSizesByReduce(3, 4)
	require.Error(t, err)

	// A re-run map task replaces its predecessor and deletes its files.
	a2 := MapStatus{ShuffleID: 3, MapID: 12, MapIndex: 0, Lengths: []int64{1, 1, 1, 1}}
	touchOutput(t, disk, a2)
	require.NoError(t, reg.RegisterMapOutput(a2))
	require.False(t, disk.Contains(a.DataBlock()))
	require.False(t, disk.Contains(a.IndexBlock()))
	st, err := reg.MapStatuses(3)
	require.NoError(t, err)
	require.Equal(t, int64(12), st[0].MapID)
	st[0].Lengths[0] = 99 // a copy
	st, _ = reg.MapStatuses(3)
	require.Equal(t, int64(1), st[0].Lengths[0])

	require.NoError(t, reg.UnregisterShuffle(3))
	require.Zero(t, disk.Files())
	require.NoError(t, reg.UnregisterShuffle(3), "unknown shuffle: nothing to do")
	_, err = reg.MapStatuses(3)
	require.ErrorIs(t, err, ErrUnknownShuffle)
}

func TestRegistryConcurrent(t *testing.T) {
	reg, disk := newTestRegistry(t)
	const shuffles, maps = 4, 16
	var wg sync.WaitGroup
	for s := range shuffles {
		require.NoError(t, reg.RegisterShuffle(s, maps, 3))
		for m := range maps {
			wg.Go(func() {
				st := MapStatus{ShuffleID: s, MapID: int64(s*maps + m), MapIndex: m, Lengths: []int64{1, 2, int64(m)}}
				for _, id := range []storage.BlockID{st.DataBlock(), st.IndexBlock()} {
					f, err := disk.Create(id)
					if err == nil {
						err = f.Close()
					}
					if err != nil {
						panic(fmt.Sprint(err))
					}
				}
				if err := reg.RegisterMapOutput(st); err != nil {
					panic(fmt.Sprint(err))
				}
				_, _ = reg.MapSizesByReduce(s, 2)
			})
		}
	}
	wg.Wait()
	for s := range shuffles {
		got, err := reg.MapSizesByReduce(s, 2)
		require.NoError(t, err)
		require.Len(t, got, maps-1, "map 0 has an empty segment")
	}
	require.NoError(t, reg.Close())
	require.Zero(t, disk.Files())
}
