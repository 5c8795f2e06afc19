package estimator_test

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
)

// fuzzNode has a field of every kind the estimator handles, exported and unexported.
type fuzzNode struct {
	Next  *fuzzNode
	kids  []*fuzzNode
	m     map[string]*fuzzNode
	Any   any
	s     string
	empty struct{}
	arr   [2]*fuzzNode
	f     func()
	ch    chan *fuzzNode
	up    unsafe.Pointer
	zero  [0]int64
	b     byte
}

// FuzzEstimate builds an arbitrary graph of fuzzNodes from the input (cycles, shared nodes,
// nil pointers, zero-size values, large containers that get sampled, sub-slices and substrings
// at offsets, buffered channels) and checks that Estimate neither panics nor returns a
// non-positive size for a graph that owns at least one node, and that it is deterministic.
func FuzzEstimate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{9, 9, 9, 1, 200, 3, 255, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxNodes = 64
		nodes := make([]*fuzzNode, 1+len(data)%maxNodes)
		for i := range nodes {
			nodes[i] = &fuzzNode{}
		}
		pick := func(b byte) *fuzzNode {
			if int(b)%(len(nodes)+1) == len(nodes) {
				return nil
			}
			return nodes[int(b)%(len(nodes)+1)]
		}
		for i := 0; i+1 < len(data); i += 2 {
			n, b := nodes[int(data[i])%len(nodes)], data[i+1]
			switch data[i] % 12 {
			case 0:
				n.Next = pick(b)
			case 1:
				n.kids = append(n.kids, pick(b))
			case 2:
				if n.m == nil {
					n.m = map[string]*fuzzNode{}
				}
				n.m[string(rune('a'+b%26))+string(data[:i%8])] = pick(b)
			case 3:
				n.Any = pick(b)
			case 4:
				n.Any = int(b) * 1000
			case 5:
				n.Any = struct{}{}
			case 6:
				n.s = string(data[:int(b)%(len(data)+1)])
			case 7:
				n.arr[b%2] = pick(b)
			case 8:
				n.f = func() { _ = n }
				n.up = unsafe.Pointer(pick(b))
			case 9: // a buffered channel holding up to 3 nodes, its ring wrapped once
				n.ch = make(chan *fuzzNode, int(b)%4)
				for j := range int(b) / 4 % (cap(n.ch) + 1) {
					n.ch <- pick(b + byte(j))
				}
				if len(n.ch) > 0 {
					n.ch <- <-n.ch
				}
			case 10:
				for range int(b) * 4 { // up to 1020 elements: sampled above 400
					n.kids = append(n.kids, pick(b))
				}
				// An interior sub-slice and substring: the arrays are shared at an offset.
				n.kids = n.kids[int(b)%(len(n.kids)+1):]
				n.s = n.s[int(b)%(len(n.s)+1):]
			case 11:
				n.Any = *n
			}
		}
		size := estimator.Estimate(nodes[0])
		require.Positive(t, size)
		require.Equal(t, size, estimator.Estimate(nodes[0]), "deterministic")
		require.Positive(t, estimator.Estimate(nodes))
	})
}
