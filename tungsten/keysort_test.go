package tungsten

import (
	"bytes"
	"math/rand/v2"
	"slices"
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

// sortPrefixes orders pairs by unsigned prefix, leaving in their place numbers equal where the
// prefixes were equal and ordered as they were, whichever bits the prefixes differ in.
func TestSortPrefixes(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	digits := func() uint64 { // 8 ASCII digits
		var p uint64
		for range 8 {
			p = p<<8 | uint64('0'+r.IntN(10))
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		n      int
		prefix func() uint64
	}{
		{"empty", 0, r.Uint64},
		{"one", 1, r.Uint64},
		{"few random", 31, r.Uint64},
		{"random", 10_000, r.Uint64},
		{"random, many equal", 10_000, func() uint64 { return r.Uint64N(50) << 40 }},
		{"all equal", 10_000, func() uint64 { return 0x7573_6572_2d31_3030 }},
		{"digits", 100_000, digits},
		{"digits and a top bit", 100_000, func() uint64 { return digits() | uint64(r.IntN(2))<<63 }},
		{"two values", 10_000, func() uint64 { return uint64(r.IntN(2)) * 0x8000_0000_0000_0001 }},
		{"small", 3000, func() uint64 { return r.Uint64N(1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := make([]int64, 2*tc.n)
			for i := range tc.n {
				a[2*i], a[2*i+1] = int64(i), int64(tc.prefix())
			}
			orig := slices.Clone(a)
			sortPrefixes(a)
			seen := make([]bool, tc.n)
			for i := range tc.n {
				addr := a[2*i]
				require.False(t, seen[addr], "address %d twice", addr)
				seen[addr] = true
				if i == 0 {
					continue
				}
				prevAddr := a[2*i-2]
				was, is := uint64(orig[2*prevAddr+1]), uint64(orig[2*addr+1])
				require.LessOrEqual(t, was, is, "prefixes %#x and %#x out of order at %d", was, is, i)
				require.Equal(t, was == is, a[2*i-1] == a[2*i+1], "equal prefixes %#x %#x, equal dense forms", was, is)
				require.Equal(t, was < is, uint64(a[2*i-1]) < uint64(a[2*i+1]), "dense forms ordered as the prefixes %#x %#x", was, is)
			}
		})
	}
}

func TestExtract8(t *testing.T) {
	for mask := range 256 {
		for v := range 256 {
			var want, bit uint8
			for i := range 8 {
				if mask>>i&1 == 1 {
					want |= uint8(v>>i&1) << bit
					bit++
				}
			}
			require.Equal(t, want, extract8(uint8(v), uint8(mask)))
		}
	}
}
