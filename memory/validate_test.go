package memory

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every Validate of the module reports every invalid field at once (errors.Join, one line each).
func TestValidateReportsEveryField(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"zero Config", Config{}.Validate(), nil},
		{"every field of Config", Config{
			SystemMemory: -1, ReservedMemory: -2, Fraction: 2, StorageFraction: math.NaN(), OffHeapSize: -3,
			ExecutorMemory: -4, NumCores: -5, PageSize: -6, Accounting: SparkAllowances + 1,
		}.Validate(), []string{
			"SystemMemory -1", "ReservedMemory -2", "Fraction 2", "StorageFraction NaN", "OffHeapSize -3 is negative",
			"ExecutorMemory -4", "NumCores -5", "PageSize -6", "Accounting 2",
		}},
		{"off-heap without a size", Config{OffHeapEnabled: true}.Validate(), []string{"OffHeapSize must be > 0"}},
		{"Budget and the newer fields", Config{Budget: -1, NonSpillwayAllowance: -2, UnmanagedPollInterval: -3}.Validate(),
			[]string{"Budget -1", "NonSpillwayAllowance -2", "UnmanagedPollInterval -3ns"}},
		{"Budget with a field it replaces", Config{Budget: 64 << 20, Fraction: 0.5, NumCores: -1}.Validate(),
			[]string{"cannot be combined with Config.Fraction (0.5)", "NumCores -1"}},
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
