package estimator

import (
	"reflect"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

type bigKey struct {
	ID  int64
	Pad [20]int64 // 168 bytes: stored indirectly
}

// slotKeys reads every full slot's key through the runtime layout mirror.
func slotKeys[K comparable, V any](t *testing.T, m map[K]V) []K {
	t.Helper()
	var e Estimator
	ml := e.layoutOf(reflect.TypeOf(m)).m
	h := *(*unsafe.Pointer)(unsafe.Pointer(&m))
	groups, ok := mapGroups((*runtimeMap)(h), len(m), nil)
	require.True(t, ok, "map layout of %T with %d entries does not validate", m, len(m))
	var keys []K
	for _, g := range groups {
		for i := range g.count * mapGroupSlots {
			if p := ml.fullSlot(g, i); p != nil {
				if reflect.TypeFor[K]().Size() > mapMaxKeyBytes {
					p = *(*unsafe.Pointer)(p)
				}
				keys = append(keys, *(*K)(p))
			}
		}
	}
	return keys
}

// TestMapLayoutMirror checks the mirror of the runtime's map structures against the map's own
// contents, for small maps, single tables, split directories, deletions and indirect keys.
func TestMapLayoutMirror(t *testing.T) {
	for _, n := range []int{0, 1, 8, 9, 100, 896, 897, 5000, 70_000} {
		m := map[int64]struct{}{}
		for i := range n {
			m[int64(i)] = struct{}{}
		}
		for i := 0; i < n; i += 3 {
			delete(m, int64(i))
		}
		var want []int64
		for k := range m {
			want = append(want, k)
		}
		got := slotKeys(t, m)
		slices.Sort(want)
		slices.Sort(got)
		require.Equal(t, want, got, "n=%d", n)
	}
	big := map[bigKey]string{}
	for i := range 1000 {
		big[bigKey{ID: int64(i)}] = "v"
	}
	keys := slotKeys(t, big)
	require.Len(t, keys, 1000)
	for _, k := range keys {
		require.Contains(t, big, k)
	}
}

// TestModelTables checks the fallback model against maps as the runtime builds them.
func TestModelTables(t *testing.T) {
	var e Estimator
	for _, n := range []int{1, 8, 9, 14, 15, 100, 896, 897, 3000, 50_000} {
		m := map[int64]int64{}
		for i := range n {
			m[int64(i)] = int64(i)
		}
		w := walker{e: &e, slices: map[uintptr]int{}}
		w.acc = &w.top
		l := e.layoutOf(reflect.TypeOf(m))
		w.inline(unsafe.Pointer(&m), l)
		w.drain(0)
		exact := w.top.cost() - allocSize(mapHeaderSize, true)
		model := modelTables(n, l.m.group)
		require.InEpsilon(t, exact, model, 0.35, "n=%d: tables %d, model %d", n, exact, model)
	}
}

// TestMapObjectLeavesNoPointers: mapObject keeps its buffers in the walker for the next map,
// and a pooled walker must not keep the tables of a map it measured reachable through them.
func TestMapObjectLeavesNoPointers(t *testing.T) {
	var e Estimator
	for _, n := range []int{5, 300, 5000} { // one group, exact, sampled
		m := map[int64]*int64{}
		for i := range n {
			m[int64(i)] = new(int64)
		}
		w := walker{e: &e, slices: map[uintptr]int{}}
		w.acc = &w.top
		w.inline(unsafe.Pointer(&m), e.layoutOf(reflect.TypeOf(m)))
		w.drain(0)
		require.Positive(t, w.top.cost())
		require.NotZero(t, cap(w.spareGroups), "n=%d: the buffer was given back", n)
		for i, g := range w.spareGroups[:cap(w.spareGroups)] {
			require.Zero(t, g, "n=%d: spare group %d still points into the map", n, i)
		}
	}
}
