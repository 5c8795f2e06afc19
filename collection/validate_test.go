package collection

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type noPartitions struct{}

func (noPartitions) NumPartitions() int  { return 0 }
func (noPartitions) Partition(int64) int { return 0 }

// Every Validate of the module reports every invalid field at once (errors.Join, one line each).
func TestValidateReportsEveryField(t *testing.T) {
	badSpill := SpillConfig{InitialThreshold: -2, ForceSpillElements: -1, ForceSpillBytes: -1, BatchSize: -1, BatchBytes: -1, Compression: 9}
	spillWant := []string{"InitialThreshold -2", "ForceSpillElements -1", "ForceSpillBytes -1", "BatchSize -1", "BatchBytes -1", "Compression 9"}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"zero SpillConfig", SpillConfig{}.Validate(), nil},
		{"SpillConfig", badSpill.Validate(), spillWant},
		{"Aggregator", Aggregator[int, int, int]{}.Validate(), []string{"CreateCombiner is nil", "MergeValue is nil", "MergeCombiners is nil"}},
		{"SorterConfig", SorterConfig[int64, int64, string]{Partitioner: noPartitions{}, Spill: SpillConfig{BatchSize: -1}}.Validate(),
			[]string{"C (string) must be V (int64)", "has 0 partitions", "BatchSize -1"}},
		{"SortConfig", SortConfig[int]{Spill: badSpill}.Validate(), append([]string{"Compare is nil"}, spillWant...)},
		{"valid SortConfig", SortConfig[int]{Compare: func(a, b int) int { return a - b }}.Validate(), nil},
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
