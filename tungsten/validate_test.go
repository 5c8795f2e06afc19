package tungsten

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

// Every Validate of the module reports every invalid field at once (errors.Join, one line each).
func TestValidateReportsEveryField(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"zero SorterConfig", SorterConfig{}.Validate(), nil},
		{"SorterConfig", SorterConfig{InitialSize: -1, PageSize: -2, NumElementsForSpillThreshold: -3, SizeInBytesForSpillThreshold: -4,
			MergeFactor: 1, Spill: storage.RecordWriterConfig{BatchRecords: -5}}.Validate(),
			[]string{"InitialSize -1", "PageSize -2", "NumElementsForSpillThreshold -3", "SizeInBytesForSpillThreshold -4", "MergeFactor 1", "BatchRecords -5"}},
		{"zero MapConfig", MapConfig{}.Validate(), nil},
		{"MapConfig", MapConfig{InitialCapacity: -1, PageSize: -2, LoadFactor: 1, Spill: storage.RecordWriterConfig{BatchRecords: -5}}.Validate(),
			[]string{"InitialCapacity -1", "PageSize -2", "LoadFactor 1", "BatchRecords -5"}},
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
