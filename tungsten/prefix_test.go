package tungsten

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// RS-01 radix support for <type>: every prefix comparator states the radix sort it allows.
func TestRS01RadixSupport(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		c                    PrefixComparator
		desc, signed, nullsF bool
	}{
		{"BINARY", PrefixBinary, false, false, true},
		{"BINARY_DESC", PrefixBinaryDesc, true, false, false},
		{"BINARY_NULLS_LAST", PrefixBinaryNullsLast, false, false, false},
		{"BINARY_DESC_NULLS_FIRST", PrefixBinaryDescNullsFirst, true, false, true},
		{"LONG", PrefixLong, false, true, true},
		{"LONG_DESC", PrefixLongDesc, true, true, false},
		{"LONG_NULLS_LAST", PrefixLongNullsLast, false, true, false},
		{"LONG_DESC_NULLS_FIRST", PrefixLongDescNullsFirst, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.desc, tc.c.Descending)
			require.Equal(t, tc.signed, tc.c.Signed)
			require.Equal(t, tc.nullsF, tc.c.NullsFirst)
			want := -1
			if tc.desc {
				want = 1
			}
			if tc.signed {
				require.Equal(t, want, tc.c.Compare(-1, 1))
			} else {
				require.Equal(t, -want, tc.c.Compare(-1, 1), "-1 is the largest unsigned prefix")
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	strs := []string{"", "a", "ab", "abcdefgh", "abcdefghi", "b", "\xff"}
	for i := 1; i < len(strs); i++ {
		require.LessOrEqual(t, PrefixBinary.Compare(StringPrefix(strs[i-1]), StringPrefix(strs[i])), 0, "%q %q", strs[i-1], strs[i])
		require.Equal(t, StringPrefix(strs[i]), BytesPrefix([]byte(strs[i])))
	}
	floats := []float64{math.Inf(-1), -1e300, -1, math.Copysign(0, -1), 0, 1e-300, 1, math.Inf(1), math.NaN()}
	prefixes := make([]int64, len(floats))
	for i, f := range floats {
		prefixes[i] = DoublePrefix(f)
	}
	require.True(t, slices.IsSortedFunc(prefixes, PrefixBinary.Compare))
	require.Equal(t, DoublePrefix(0), DoublePrefix(math.Copysign(0, -1)))
}

// prefixAt is BytesPrefix of b[start:end] whatever follows end.
func TestPrefixAt(t *testing.T) {
	b := []byte("user-100000123456\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8")
	for start := 0; start <= 17; start++ {
		for end := start; end <= 17; end++ {
			require.Equal(t, BytesPrefix(b[start:end]), prefixAt(b, start, end), "[%d:%d]", start, end)
			require.Equal(t, BytesPrefix(b[start:end]), prefixAt(b[:end], start, end), "[%d:%d] at the end", start, end)
		}
	}
}
