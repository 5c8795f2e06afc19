package spillbeam

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fragile is a value whose Beam coder fails for negative numbers.
type fragile struct{ N int }

var errNegative = errors.New("fragile: negative value")

func encodeFragile(f fragile) ([]byte, error) {
	if f.N < 0 {
		return nil, fmt.Errorf("%w %d", errNegative, f.N)
	}
	return binary.AppendVarint(nil, int64(f.N)), nil
}

func decodeFragile(b []byte) (fragile, error) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return fragile{}, errors.New("fragile: bad varint")
	}
	return fragile{int(n)}, nil
}

func init() {
	// Beam's registrations happen in init functions, before beam.Init (ptest.Main calls it).
	beam.RegisterCoder(reflect.TypeFor[fragile](), encodeFragile, decodeFragile)
}

func TestSortGroup(t *testing.T) {
	many := randomValues(1, 30000, 5000, 100)
	dups := slices.Repeat([]KV[string, string]{{"b", "x"}, {"a", "y"}, {"b", "x"}}, 1000)
	tests := []struct {
		name       string
		values     []KV[string, string]
		budget     int64
		wantSpills bool
	}{
		{"empty", nil, MinBudget, false},
		{"one", []KV[string, string]{{"k", "v"}}, MinBudget, false},
		{"duplicates", dups, MinBudget, false},
		{"empty keys and values", []KV[string, string]{{"", ""}, {"a", ""}, {"", "z"}}, MinBudget, false},
		{"fits", many, 256 << 20, false},
		{"spills", many, MinBudget, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testExecutor(t, tt.budget)
			var got []KV[string, string]
			st, err := SortGroup(context.Background(), e, valuesIter(tt.values), collect(&got))
			require.NoError(t, err)
			assert.Equal(t, int64(len(tt.values)), st.Values)
			assert.Equal(t, tt.wantSpills, st.Spills > 0, "spills: %d", st.Spills)
			assert.True(t, normalize(got), "out of order")
			assert.Equal(t, referenceSort(tt.values), got)
			assert.Equal(t, st.Spills, e.Metrics().Spills)
		})
	}
}

// TestSortGroupOrderIsEncodedBytes checks non-string keys sort by their Beam encoding (varints
// here), as Beam Java's SortValues sorts by the key coder's bytes, and that values of any type
// survive the round trip.
func TestSortGroupOrderIsEncodedBytes(t *testing.T) {
	e := testExecutor(t, MinBudget)
	var values []KV[int64, []byte]
	for i := range int64(150000) {
		k := (i * 7919) % 5003
		values = append(values, KV[int64, []byte]{k - 2500, binary.AppendVarint(nil, i)})
	}
	var got []KV[int64, []byte]
	st, err := SortGroup(context.Background(), e, valuesIter(values), collect(&got))
	require.NoError(t, err)
	assert.Positive(t, st.Spills)
	enc := beam.NewElementEncoder(reflect.TypeFor[int64]())
	encoded := func(k int64) string {
		var b bytesBuffer
		require.NoError(t, enc.Encode(k, &b))
		return string(b)
	}
	require.Len(t, got, len(values))
	for i := 1; i < len(got); i++ {
		require.LessOrEqual(t, encoded(got[i-1].Key), encoded(got[i].Key), "position %d", i)
	}
	want := make(map[string]int64)
	for _, kv := range values {
		want[string(kv.Value)] = kv.Key
	}
	for _, kv := range got {
		require.Equal(t, want[string(kv.Value)], kv.Key)
	}
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

func TestSortGroupErrorsReleaseEverything(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		run  func(ctx context.Context, e *Executor) error
		want error
		msg  string
	}{
		{"value encoding fails after spills", func(ctx context.Context, e *Executor) error {
			values := make([]KV[string, fragile], 50000)
			for i := range values {
				values[i] = KV[string, fragile]{fmt.Sprint(i), fragile{i}}
			}
			values[len(values)-1].Value.N = -7
			_, err := SortGroup(ctx, e, valuesIter(values), func(string, fragile) error { return nil })
			return err
		}, ErrEncoding, "value 50000: spillbeam: encoding failed: spillbeam.fragile value: fragile: negative value -7"},
		{"key encoding fails", func(ctx context.Context, e *Executor) error {
			values := []KV[fragile, string]{{fragile{1}, "a"}, {fragile{-1}, "b"}}
			_, err := SortGroup(ctx, e, valuesIter(values), func(fragile, string) error { return nil })
			return err
		}, ErrEncoding, "key of value 2"},
		{"callback fails mid-read", func(ctx context.Context, e *Executor) error {
			n := 0
			_, err := SortGroup(ctx, e, valuesIter(randomValues(2, 30000, 30000, 100)), func(string, string) error {
				if n++; n == 1000 {
					return boom
				}
				return nil
			})
			return err
		}, boom, "boom"},
		{"context canceled", func(ctx context.Context, e *Executor) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := SortGroup(ctx, e, valuesIter(randomValues(3, 30000, 30000, 100)), func(string, string) error {
				cancel()
				return ctx.Err()
			})
			return err
		}, context.Canceled, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testExecutor(t, MinBudget)
			err := tt.run(context.Background(), e)
			require.ErrorIs(t, err, tt.want)
			assert.ErrorContains(t, err, tt.msg)
			assert.Equal(t, int64(1), e.Metrics().FailedTasks)
		})
	}
}

// sumCount is a Combiner counting and summing a sub-key's values into a fragile accumulator
// whose encoding fails once Sum is negative.
type sumCount struct{}

func (sumCount) CreateAccumulator() fragile             { return fragile{} }
func (sumCount) AddInput(a fragile, v int) fragile      { return fragile{a.N + v} }
func (sumCount) MergeAccumulators(a, b fragile) fragile { return fragile{a.N + b.N} }

func TestCombineGroup(t *testing.T) {
	const n, distinct = 200000, 100000
	tests := []struct {
		name       string
		budget     int64
		poison     bool // one sub-key's accumulator cannot be encoded
		wantSpills bool
	}{
		{"fits", 256 << 20, false, false},
		{"spills", MinBudget, false, true},
		{"accumulator encoding fails", MinBudget, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testExecutor(t, tt.budget)
			values := make([]KV[string, int], n)
			want := make(map[string]int)
			for i := range values {
				k := fmt.Sprintf("sub%05d", (i*7919)%distinct)
				v := i % 10
				if tt.poison && i == 3 {
					v = -1000
				}
				values[i] = KV[string, int]{k, v}
				want[k] += v
			}
			got := make(map[string]int)
			st, err := CombineGroup(context.Background(), e, valuesIter(values), Combiner[int, fragile](sumCount{}), func(k string, a fragile) error {
				_, dup := got[k]
				require.False(t, dup, "sub-key %q twice", k)
				got[k] = a.N
				return nil
			})
			assert.Equal(t, tt.wantSpills, st.Spills > 0, "spills: %d", st.Spills)
			if tt.poison {
				require.ErrorIs(t, err, ErrEncoding)
				assert.ErrorIs(t, err, errNegative)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}
