package wordcount

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWordIsABijection(t *testing.T) {
	require.Equal(t, "ka", Word(0))
	require.Equal(t, "os", Word(31))
	require.Equal(t, "kaka", Word(32))
	require.Equal(t, "kalo", Word(64))
	seen := map[string]uint64{}
	for k := range uint64(40_000) {
		w := Word(k)
		prev, dup := seen[w]
		require.False(t, dup, "ranks %d and %d both spell %q", prev, k, w)
		seen[w] = k
	}
}

func TestTextSplitsAndSkew(t *testing.T) {
	text, err := NewText(Config{Words: 50_000, Vocabulary: 5_000, Seed: 11})
	require.NoError(t, err)
	all := slices.Collect(text.Words(0, 50_000))
	for _, n := range []int{1, 3, 16} {
		var joined []string
		for i := range n {
			joined = slices.AppendSeq(joined, text.Split(i, n))
		}
		require.Equal(t, all, joined, "%d splits", n)
	}
	counts := Count(text)
	require.Greater(t, counts[Word(0)], 20*counts[Word(100)], "Zipf: rank 0 is far more frequent")
	var total int64
	for _, c := range counts {
		total += c
	}
	require.EqualValues(t, 50_000, total)
	other, err := NewText(Config{Words: 50_000, Vocabulary: 5_000, Seed: 12})
	require.NoError(t, err)
	require.NotEqual(t, all, slices.Collect(other.Words(0, 50_000)))
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Words: -1}, "Words -1"},
		{Config{Vocabulary: -1}, "Vocabulary -1"},
		{Config{Skew: 0.9}, "Skew 0.9 must be > 1"},
		{Config{Words: -1, Vocabulary: -1, Skew: 0.9}, "Words -1"}, // every field is reported:
		{Config{Words: -1, Vocabulary: -1, Skew: 0.9}, "Vocabulary -1"},
		{Config{Words: -1, Vocabulary: -1, Skew: 0.9}, "Skew 0.9"},
	} {
		_, err := NewText(tt.cfg)
		require.ErrorContains(t, err, tt.want)
	}
	require.NoError(t, Config{}.Validate())
}
