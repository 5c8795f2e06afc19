package storage

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBlockIDNames(t *testing.T) {
	tests := []struct {
		id   BlockID
		name string
		kind BlockKind
	}{
		{RDDBlockID(0, 1), "rdd_0_1", KindRDD},
		{ShuffleBlockID(0, 1, 2), "shuffle_0_1_2", KindShuffle},
		{ShuffleDataBlockID(3, 4, 0), "shuffle_3_4_0.data", KindShuffleData},
		{ShuffleIndexBlockID(3, 1<<40, 0), "shuffle_3_1099511627776_0.index", KindShuffleIndex},
		{TempLocalBlockID("ab-12"), "temp_local_ab-12", KindTempLocal},
		{TempShuffleBlockID("FF"), "temp_shuffle_FF", KindTempShuffle},
		{TestBlockID("a1"), "test_a1", KindTest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.name, tt.id.String())
			require.Equal(t, tt.kind, tt.id.Kind())
			got, err := ParseBlockID(tt.name)
			require.NoError(t, err)
			require.Equal(t, tt.id, got, "parsed id must be == (comparable)")
			_, isRDD := got.RDDID()
			require.Equal(t, tt.kind == KindRDD, isRDD)
			require.Equal(t, tt.kind == KindTempLocal || tt.kind == KindTempShuffle, got.IsTemp())
		})
	}
	rdd, ok := RDDBlockID(7, 9).RDDID()
	require.True(t, ok)
	require.Equal(t, 7, rdd)
	split, _ := RDDBlockID(7, 9).Split()
	require.Equal(t, 9, split)
	s, m, r, ok := ShuffleDataBlockID(1, 2, 3).Shuffle()
	require.True(t, ok)
	require.Equal(t, []int64{1, 2, 3}, []int64{int64(s), m, int64(r)})
	require.True(t, BlockID{}.IsZero())
	require.Equal(t, "<invalid block>", BlockID{}.String())
	// a map key
	m2 := map[BlockID]int{RDDBlockID(0, 1): 1}
	require.Equal(t, 1, m2[RDDBlockID(0, 1)])
	var _ interface{ String() string } = BlockID{}
}

func TestParseBlockIDRejects(t *testing.T) {
	for _, s := range []string{"", "rdd_1", "rdd_a_1", "rdd_01_1", "rdd_-1_1", "rdd_1_2_3",
		"shuffle_1_2", "shuffle_1_2_3.foo", "shuffle_1_+2_3", "temp_local_", "temp_local_xyz",
		"test_", "broadcast_1", "rdd_4294967296_0"} {
		_, err := ParseBlockID(s)
		require.Error(t, err, s)
		require.Contains(t, err.Error(), "unrecognized block id")
	}
}

func TestBlockIDMisusePanics(t *testing.T) {
	require.PanicsWithValue(t, "storage: rdd id -1 out of range [0, 2^31)", func() { RDDBlockID(-1, 0) })
	require.Panics(t, func() { ShuffleBlockID(0, -1, 0) })
	require.Panics(t, func() { TempLocalBlockID("not/hex") })
	require.Panics(t, func() { TestBlockID("") })
}

func TestNewTempID(t *testing.T) {
	a, b := NewTempID(), NewTempID()
	require.NotEqual(t, a, b)
	require.Len(t, a, 36)
	id, err := ParseBlockID("temp_shuffle_" + a)
	require.NoError(t, err)
	require.Equal(t, TempShuffleBlockID(a), id)
}

// FuzzParseBlockID: no panics, and every accepted name prints back identically.
func FuzzParseBlockID(f *testing.F) {
	for _, s := range []string{"rdd_0_1", "shuffle_0_1_2.data", "temp_local_0a-1", "test_x", "rdd_00_1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseBlockID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseBlockID(%q).String() = %q", s, id.String())
		}
	})
}
