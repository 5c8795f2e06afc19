package storage

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every Validate of the module reports every invalid field at once (errors.Join, one line each).
func TestValidateReportsEveryField(t *testing.T) {
	badDisk := DiskConfig{SubDirsPerDir: -1, Dirs: []string{"a", "", ""}}
	badStore := MemoryStoreConfig{UnrollMemoryThreshold: -1, UnrollMemoryCheckPeriod: -2, UnrollMemoryGrowthFactor: 1, ChunkSize: -3}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"zero DiskConfig", DiskConfig{}.Validate(), nil},
		{"DiskConfig", badDisk.Validate(), []string{"SubDirsPerDir -1", "Dirs[1] is empty", "Dirs[2] is empty"}},
		{"zero MemoryStoreConfig", MemoryStoreConfig{}.Validate(), nil},
		{"MemoryStoreConfig", badStore.Validate(), []string{"UnrollMemoryThreshold -1", "UnrollMemoryCheckPeriod -2", "UnrollMemoryGrowthFactor 1", "ChunkSize -3"}},
		{"zero DiskStoreConfig", DiskStoreConfig{}.Validate(), nil},
		{"DiskStoreConfig", DiskStoreConfig{BufferSize: 1, ChunkSize: -1}.Validate(), []string{"BufferSize 1", "ChunkSize -1"}},
		{"zero RecordWriterConfig", RecordWriterConfig{}.Validate(), nil},
		{"RecordWriterConfig", RecordWriterConfig{Compression: CompressionZstd + 1, BatchRecords: -1, BatchBytes: -2, BufferSize: 3}.Validate(),
			[]string{"Compression 4", "BatchRecords -1", "BatchBytes -2", "BufferSize 3"}},
		{"Config and its parts", Config{DiskConfig: badDisk, MemoryStore: MemoryStoreConfig{ChunkSize: -3}}.Validate(),
			[]string{"Config.Memory is nil", "SubDirsPerDir -1", "Dirs[1] is empty", "Dirs[2] is empty", "ChunkSize -3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				require.NoError(t, tc.err)
				return
			}
			require.Error(t, tc.err)
			for _, w := range tc.want {
				require.ErrorContains(t, tc.err, w)
			}
			require.Len(t, strings.Split(tc.err.Error(), "\n"), len(tc.want), "one line per field:\n%v", tc.err)
		})
	}
}
