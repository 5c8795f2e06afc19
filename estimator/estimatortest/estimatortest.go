// Package estimatortest holds the value shapes and the heap measurement that prove the
// estimator's accuracy, shared by the estimator's tests and the bench/sizecompare program.
//
// It imports only the standard library.
package estimatortest

import (
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

// Shape is one kind of value graph to size.
type Shape struct {
	Name string
	// Sampled says the estimator samples the value (a container of more than 400 elements
	// holding pointers), so the looser accuracy bound applies.
	Sampled bool
	// Build returns a freshly built value; everything it allocates and keeps reachable from the
	// result is the value's heap footprint.
	Build func() any
}

// T is the record type the pointer-holding shapes point to: 40 bytes, in the 48-byte class.
type T struct {
	ID    int64
	Score float64
	Name  string
	Flag  bool
}

func newT(i int) *T { return &T{ID: int64(i), Score: float64(i) / 3, Name: "t" + strconv.Itoa(i)} }

type listNode struct {
	Val  int64
	Next *listNode
}

type treeNode struct {
	Key         int64
	Left, Right *treeNode
}

type padded struct {
	A bool
	B int64
	C bool
	D int32
	E bool
}

type graphNode struct {
	ID    int
	Label string
	Edges []*graphNode
}

// Shapes returns the accuracy shapes, each big enough (megabytes) that the measurement's
// noise is far below the bounds.
func Shapes() []Shape {
	return []Shape{
		{Name: "[]int64 1M", Build: func() any { return make([]int64, 1<<20) }},
		{Name: "[]string 100k", Sampled: true, Build: func() any {
			s := make([]string, 100_000)
			for i := range s {
				s[i] = strconv.Itoa(i) + strings.Repeat("x", i%37)
			}
			return s
		}},
		{Name: "map[string]int64 100k", Sampled: true, Build: func() any {
			m := map[string]int64{}
			for i := range 100_000 {
				m["key-"+strconv.Itoa(i)] = int64(i)
			}
			return m
		}},
		{Name: "map[int64][]int64 20k", Sampled: true, Build: func() any {
			m := map[int64][]int64{}
			for i := range 20_000 {
				m[int64(i)] = make([]int64, 1+i%20)
			}
			return m
		}},
		{Name: "map[string]*T 50k", Sampled: true, Build: func() any {
			m := map[string]*T{}
			for i := range 50_000 {
				m["k"+strconv.Itoa(i)] = newT(i)
			}
			return m
		}},
		{Name: "linked list 100k", Build: func() any {
			var head *listNode
			for i := range 100_000 {
				head = &listNode{Val: int64(i), Next: head}
			}
			return head
		}},
		{Name: "binary tree 100k", Build: func() any {
			rng := rand.New(rand.NewPCG(1, 2))
			var root *treeNode
			for range 100_000 {
				k := rng.Int64()
				p := &root
				for *p != nil {
					if k < (*p).Key {
						p = &(*p).Left
					} else {
						p = &(*p).Right
					}
				}
				*p = &treeNode{Key: k}
			}
			return root
		}},
		{Name: "[]struct padding 100k", Build: func() any { return make([]padded, 100_000) }},
		{Name: "[]*T shared 100k", Sampled: true, Build: func() any {
			shared := make([]*T, 10)
			for i := range shared {
				shared[i] = newT(i)
			}
			s := make([]*T, 100_000)
			for i := range s {
				if i%2 == 0 {
					s[i] = newT(i)
				} else {
					s[i] = shared[i%len(shared)]
				}
			}
			return s
		}},
		{Name: "substrings of one string", Sampled: true, Build: func() any {
			var b []byte
			for i := range 200_000 {
				b = append(b, "w"+strconv.Itoa(i%1000)+" "...)
			}
			text := string(b) // one 1.3 MB backing array, kept alive by the fields only
			return strings.Fields(text)
		}},
		{Name: "nested maps 1000x50", Sampled: true, Build: func() any {
			m := map[string]map[string]int64{}
			for i := range 1000 {
				inner := map[string]int64{}
				for j := range 50 {
					inner["j"+strconv.Itoa(j)] = int64(j)
				}
				m["i"+strconv.Itoa(i)] = inner
			}
			return m
		}},
		{Name: "map[int64]*T 200k", Sampled: true, Build: func() any {
			m := map[int64]*T{}
			for i := range 200_000 {
				m[int64(i)] = newT(i)
			}
			return m
		}},
		{Name: "[]any mixed 100k", Sampled: true, Build: func() any {
			s := make([]any, 100_000)
			for i := range s {
				switch i % 8 {
				case 0:
					s[i] = int64(i) * 1000 // boxed: 8 bytes
				case 1:
					s[i] = "s" + strconv.Itoa(i) // 16-byte box + bytes
				case 2:
					s[i] = float64(i) + 0.5
				case 3:
					s[i] = newT(i) // pointer-shaped: no box
				case 4:
					s[i] = []byte(strconv.Itoa(i * 7))
				case 5:
					s[i] = i % 200 // small integer: static, no box
				case 6:
					s[i] = struct{ A, B int64 }{int64(i), 2}
				case 7:
					s[i] = i%3 == 0 // bool: static
				}
			}
			return s
		}},
		{Name: "map grew then shrank", Sampled: true, Build: func() any {
			m := map[int64]string{}
			for i := range 100_000 {
				m[int64(i)] = "v" + strconv.Itoa(i)
			}
			for i := range 99_000 {
				delete(m, int64(i))
			}
			return m
		}},
		{Name: "struct graph with cycles 20k", Build: func() any {
			rng := rand.New(rand.NewPCG(3, 4))
			nodes := make([]*graphNode, 20_000)
			for i := range nodes {
				nodes[i] = &graphNode{ID: i, Label: "node-" + strconv.Itoa(i)}
			}
			for i, n := range nodes {
				n.Edges = []*graphNode{nodes[(i+1)%len(nodes)], nodes[rng.IntN(len(nodes))], n}
			}
			return nodes[0] // everything is reachable through the ring
		}},
		{Name: "map[int64]int64 200k", Build: func() any {
			m := map[int64]int64{}
			for i := range 200_000 {
				m[int64(i)] = int64(i)
			}
			return m
		}},
		{Name: "[]map[int64]int64 400 small", Build: func() any {
			s := make([]map[int64]int64, 400)
			for i := range s {
				s[i] = map[int64]int64{}
				for j := range i % 9 {
					s[i][int64(j)] = 1
				}
			}
			return s
		}},
		{Name: "[]*T distinct 100k", Sampled: true, Build: func() any {
			s := make([]*T, 100_000)
			for i := range s {
				s[i] = newT(i)
			}
			return s
		}},
		{Name: "channels", Build: func() any {
			return &struct {
				Ints chan int64
				Ptrs chan *T
			}{make(chan int64, 100_000), make(chan *T, 100_000)}
		}},
		// Sub-slices and substrings reached through interior pointers into a few shared
		// backing arrays: each array is one heap object however many elements point into it,
		// at whatever offsets.
		{Name: "sub-slices of 10 64KiB bufs 50k", Sampled: true, Build: func() any {
			return subslices(50_000, 10, 64<<10, func(i int) int { return i % 10 }, false)
		}},
		{Name: "sub-slices of 10 64KiB bufs 400", Build: func() any {
			return subslices(400, 10, 64<<10, func(i int) int { return i % 10 }, false)
		}},
		{Name: "clipped sub-slices 4KiB bufs 20k", Sampled: true, Build: func() any {
			rng := rand.New(rand.NewPCG(5, 6))
			return subslices(20_000, 4, 4<<10, func(int) int { return rng.IntN(4) }, true)
		}},
		{Name: "clipped sub-slices 1MiB buf 100k", Sampled: true, Build: func() any {
			return subslices(100_000, 1, 1<<20, func(int) int { return 0 }, true)
		}},
		{Name: "substrings of 8 64KiB strings 50k", Sampled: true, Build: func() any {
			rng := rand.New(rand.NewPCG(7, 8))
			texts := make([]string, 8)
			for i := range texts {
				texts[i] = strings.Repeat(strconv.Itoa(i), 64<<10)
			}
			s := make([]string, 50_000)
			for i := range s {
				off, n := rng.IntN(64<<10-100), 1+rng.IntN(100)
				s[i] = texts[rng.IntN(len(texts))][off : off+n]
			}
			return s
		}},
		{Name: "records into a 256KiB buf 30k", Sampled: true, Build: func() any {
			// Parsed records: each its own struct, its fields sub-slices and substrings of
			// one shared read buffer at increasing offsets.
			buf := make([]byte, 256<<10)
			text := string(buf)
			type record struct {
				Key []byte
				Val string
				N   int64
			}
			s := make([]*record, 30_000)
			for i := range s {
				off := i * 8
				s[i] = &record{Key: buf[off : off+4 : off+4], Val: text[off+4 : off+8], N: int64(i)}
			}
			return s
		}},
		{Name: "sub-slices of 32 consecutive bufs 100k", Sampled: true, Build: func() any {
			// Records parsed in order from a stream: consecutive elements share a buffer.
			return subslices(100_000, 32, 64<<10, func(i int) int { return i / 3125 }, false)
		}},
		{Name: "records into 20 consecutive bufs 50k", Sampled: true, Build: func() any {
			type record struct {
				Key []byte
				Val string
			}
			bufs := make([][]byte, 20)
			texts := make([]string, len(bufs))
			for i := range bufs {
				bufs[i] = make([]byte, 16<<10)
				texts[i] = strings.Repeat("v", 16<<10)
			}
			s := make([]*record, 50_000)
			for i := range s {
				b, off := i/2500, i%2500*6
				s[i] = &record{Key: bufs[b][off : off+16], Val: texts[b][off : off+48]}
			}
			return s
		}},
		// Buffered channels hold their elements in the buffer: what those reference counts.
		{Name: "chan *T 10k full", Sampled: true, Build: func() any {
			c := make(chan *T, 10_000)
			for i := range cap(c) {
				c <- newT(i)
			}
			return c
		}},
		{Name: "chan T 5k of 8k, wrapped", Sampled: true, Build: func() any {
			c := make(chan T, 8_000)
			for i := range 6_000 {
				c <- *newT(i)
			}
			for range 4_000 {
				<-c // the ring's start moves on; the received values' strings become garbage
			}
			for i := range 3_000 {
				c <- *newT(i)
			}
			return c
		}},
		{Name: "chan string 300 of 1000", Build: func() any {
			c := make(chan string, 1_000)
			for i := range 300 {
				c <- strings.Repeat("s", 20+i%50)
			}
			return c
		}},
		{Name: "chan []int64 2k of 4k", Sampled: true, Build: func() any {
			c := make(chan []int64, 4_000)
			for i := range 2_000 {
				c <- make([]int64, 1+i%30)
			}
			return c
		}},
	}
}

// subslices returns n sub-slices of 32 to 95 bytes into bufs shared buffers of size bytes, at
// offsets spread over the buffers; element i points into buffer pick(i). If clip, each
// sub-slice's capacity ends with it (s[a:b:b]), so no two elements' ranges overlap.
func subslices(n, bufs, size int, pick func(i int) int, clip bool) [][]byte {
	b := make([][]byte, bufs)
	for i := range b {
		b[i] = make([]byte, size)
	}
	s := make([][]byte, n)
	for i := range s {
		l := 32 + i%64
		off := (i * 7919) % (size - l)
		if clip {
			s[i] = b[pick(i)][off : off+l : off+l]
		} else {
			s[i] = b[pick(i)][off : off+l]
		}
	}
	return s
}

// HeapGrowth builds a value and returns it with the growth of the live heap it caused: the
// live heap bytes the collector marked after a full collection following build, minus those
// before it. The caller should keep other goroutines idle while it runs.
func HeapGrowth(build func() any) (v any, grown int64) {
	before := liveHeap()
	v = build()
	after := liveHeap()
	runtime.KeepAlive(v)
	return v, after - before
}

// liveHeap collects garbage twice (the second cycle frees what the first one's finalizers and
// sweeping left) and returns the bytes of objects the last cycle marked live.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
