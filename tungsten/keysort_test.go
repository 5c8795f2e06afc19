package tungsten

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// sortInPlace orders a map's records as bytes.Compare orders their keys, for keys sharing long
// starts and differing in trailing zero bytes or length only (sortByKey's level by level radix
// sort, and its end by length), with or without a start every key shares (which the prefixes
// skip).
func TestSortByKey(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 4))
	for _, mode := range modes {
		for _, tc := range []struct {
			name  string
			start func() []byte
		}{
			{"starts of user-1000", func() []byte { return []byte("user-1000")[:r.IntN(10)] }},
			{"all start user-1000", func() []byte { return []byte("user-1000") }},
			{"all start with 13 bytes", func() []byte { return []byte("tenant-17/usr") }},
			{"decimal numbers", func() []byte { return strconv.AppendInt([]byte("user-"), 100_000_000_000+r.Int64N(1_000_000), 10) }},
		} {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				tm, scope := newTask(t, mode, 64*mib, mib), newScope(t)
				m, err := NewBytesToBytesMap(ctx, tm, scope, MapConfig{})
				require.NoError(t, err)
				alphabet := []byte{0, 1, 'a'}
				want := 0
				var common []byte
				for i := range 20_000 {
					k := tc.start()
					for range r.IntN(20) {
						k = append(k, alphabet[r.IntN(len(alphabet))])
					}
					if i == 0 {
						common = bytes.Clone(k)
					}
					common = common[:commonPrefixLen(common, k)]
					if loc := m.Lookup(k); !loc.IsDefined() {
						ok, err := loc.Append(ctx, k, int4(len(k)))
						require.NoError(t, err)
						require.True(t, ok)
						want++
					}
				}
				ps, got, err := m.sortInPlace(ctx, false)
				require.NoError(t, err)
				require.Equal(t, common, got, "the start every key shares")
				require.Len(t, ps, want)
				for i := 1; i < len(ps); i++ {
					prev, cur := m.mapKey(ps[i-1].addr), m.mapKey(ps[i].addr)
					require.Negative(t, bytes.Compare(prev, cur), "keys %q and %q out of order at %d", prev, cur, i)
				}
				m.reset(true)
				require.NoError(t, m.Close())
			})
		}
	}
}

func TestCommonPrefixLen(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 0},
		{"abc", "abd", 2},
		{"abc", "abc", 3},
		{"abc", "abcdef", 3},
		{"user-100000123456", "user-100000123457", 16},
		{"user-100000123456", "user-100001123456", 10},
		{"user-100", "user-101", 7},
		{"user-1000", "user-1000", 9},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00\x00\x00\x01", 8},
	} {
		require.Equal(t, tc.want, commonPrefixLen([]byte(tc.a), []byte(tc.b)), "%q %q", tc.a, tc.b)
		require.Equal(t, tc.want, commonPrefixLen([]byte(tc.b), []byte(tc.a)), "%q %q", tc.b, tc.a)
	}
}
