package estimator_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
)

type node struct {
	next *node
	val  int64
}

type selfSlice []selfSlice

type known struct {
	refs []*node
	name string
}

func (known) EstimatedSize() int64 { return 200 }

type holder struct {
	k   *known
	any any
}

func TestEstimate(t *testing.T) {
	big := strings.Repeat("x", 1000)
	shared := &[100]int64{}
	cyc := &node{val: 1}
	cyc.next = cyc
	self := make(selfSlice, 1)
	self[0] = self
	var nilNode *node
	for _, tc := range []struct {
		name string
		v    any
		want int64
	}{
		{"nil", nil, 0},
		{"nil pointer", nilNode, 0},
		{"pointer-free struct value: nothing referenced", struct{ a, b int64 }{1, 2}, 0},
		{"*int64 (tiny allocator block)", new(int64), 16},
		{"*struct{} (zerobase)", new(struct{}), 0},
		{"[]int64 cap 10", make([]int64, 3, 10), 80},
		{"[]*node cap 3 of nils: scan class", make([]*node, 3), 24},
		{"string of 20 bytes: size class 24", strings.Repeat("a", 20), 24},
		{"string of 5 bytes: tiny block", strings.Repeat("a", 5), 16},
		{"empty string", "", 0},
		{"shared pointee counted once", struct{ a, b *[100]int64 }{shared, shared}, 896},
		{"self cycle", cyc, 16},
		{"slice containing itself", self, 24},
		{"substring shares the backing array", struct{ a, b string }{big, big[10:20]}, 1024},
		{"small int in interface: static", []any{int64(5)}, 16},
		{"large int in interface: 8-byte box in a tiny block", []any{int64(1000)}, 32},
		{"bool and zero-size in interface: static", []any{true, struct{}{}}, 32},
		{"empty substring in interface: static, references nothing", []any{big[5:5]}, 16},
		{"pointer in interface: no box", []any{&node{}}, 16 + 16},
		{"func field: header only", struct{ f func() int }{func() int { return len(big) }}, 0},
		{"map with one entry: header and one group", map[int64]int64{1: 1}, 48 + 144},
		{"empty map: header only", map[int64]int64{}, 48},
		{"unbuffered channel: hchan", make(chan int), 112},
		{"buffered pointer-free channel: one allocation", make(chan int64, 10), 192},
		{"buffered channel of pointers: hchan and buffer", make(chan *node, 10), 112 + 80},
		{"buffered channel holding two pointers", filledChan(10, 2, 0), 112 + 80 + 2*16},
		{"channel whose ring wrapped: received values not counted", filledChan(3, 3, 2), 112 + 24 + 3*16},
		{"channel of strings: only the buffered ones", chanOfStrings(big[:24], big[100:124], big[:30]), 112 + 128 + 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, estimator.Estimate(tc.v))
		})
	}
}

// filledChan returns a channel of capacity c after sending n new nodes, receiving r of them and
// sending r more (so the ring wraps when n == c).
func filledChan(c, n, r int) chan *node {
	ch := make(chan *node, c)
	for range n {
		ch <- &node{}
	}
	for range r {
		<-ch
	}
	for range r {
		ch <- &node{}
	}
	return ch
}

// chanOfStrings returns a channel of capacity 8 holding s, sent after two strings received.
func chanOfStrings(s ...string) chan string {
	ch := make(chan string, 8)
	ch <- strings.Repeat("a", 500)
	ch <- strings.Repeat("b", 500)
	<-ch
	<-ch
	for _, v := range s {
		ch <- v
	}
	return ch
}

// SE-09: KnownSizeEstimation [derived] (SizeEstimatorSuite): a value reporting its own size
// is not traversed, wherever it is met.
func TestEstimate_SE09_KnownSizeEstimation(t *testing.T) {
	k := &known{refs: []*node{{}, {}}, name: strings.Repeat("n", 100)}
	require.EqualValues(t, 200, estimator.Estimate(k), "top-level pointer")
	require.EqualValues(t, 200, estimator.Estimate(*k), "top-level value")
	// Through a pointer field: the holder (24 bytes) plus 200, once although reached twice.
	require.EqualValues(t, 24+200, estimator.Estimate(&holder{k: k, any: k}))
	// As a value in an interface: its box is replaced by the reported size.
	require.EqualValues(t, 24+200, estimator.Estimate(&holder{any: *k}))
}

// The package-level Estimate and a reused Estimator agree, and sampling is deterministic.
func TestEstimate_Deterministic(t *testing.T) {
	s := make([]*node, 100_000)
	for i := range s {
		s[i] = &node{val: int64(i)}
	}
	m := map[int64]*node{}
	for i, n := range s[:50_000] {
		m[int64(i)] = n
	}
	var e estimator.Estimator
	for _, v := range []any{s, m} {
		first := estimator.Estimate(v)
		require.Equal(t, first, e.Estimate(v))
		require.Equal(t, first, e.Estimate(v))
	}
}
