package shuffle

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// Every Validate of the module reports every invalid field at once (errors.Join, one line each).
func TestValidateReportsEveryField(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"zero Config", Config{}.Validate(), nil},
		{"Config", Config{BypassMergeThreshold: -2, MaxBytesInFlight: -1, MaxBlockSizeFetchToMem: -1,
			Spill: collection.SpillConfig{BatchSize: -1, BatchBytes: -1}}.Validate(),
			[]string{"BypassMergeThreshold -2", "MaxBytesInFlight -1", "MaxBlockSizeFetchToMem -1", "Config.Spill: collection: SpillConfig.BatchSize -1", "BatchBytes -1"}},
		{"RunnerConfig", RunnerConfig{Cores: -1, Shuffle: Config{MaxBytesInFlight: -1}}.Validate(),
			[]string{"RunnerConfig.Memory is nil", "RunnerConfig.Disk is nil", "Cores -1", "MaxBytesInFlight -1"}},
		{"Dependency", (&Dependency[string, int64, int64]{ShuffleID: -1, MapSideCombine: true}).Validate(),
			[]string{"ShuffleID -1", "Partitioner is nil", "KeyCodec is nil", "ValueCodec is nil", "map-side combine without Aggregator"}},
		{"Dependency with an Aggregator", (&Dependency[string, int64, []int64]{
			Partitioner: zeroPartitions{}, Aggregator: &Aggregator[string, int64, []int64]{},
			KeyCodec: storage.StringCodec{}, ValueCodec: storage.VarintCodec[int64]{},
		}).Validate(), []string{"has 0 partitions", "CreateCombiner is nil", "MergeValue is nil", "MergeCombiners is nil", "CombinerCodec is nil"}},
		{"Dependency without an Aggregator", (&Dependency[string, int64, string]{
			Partitioner: NewHashPartitioner[string](2), KeyCodec: storage.StringCodec{}, ValueCodec: storage.VarintCodec[int64]{},
		}).Validate(), []string{"the combiner type must be the value type"}},
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

type zeroPartitions struct{}

func (zeroPartitions) NumPartitions() int   { return 0 }
func (zeroPartitions) Partition(string) int { return 0 }
