package memory

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

const gib = int64(1) << 30

// fakeEnv is a machine with physical memory phys, the cgroup files of fsys and a Go memory limit
// (math.MaxInt64 for none) that setGoLimit records.
type fakeEnv struct {
	limit int64
	sets  []int64
}

func (f *fakeEnv) env(fsys fstest.MapFS, phys int64) environment {
	return environment{
		fsys: fsys,
		setGoLimit: func(l int64) int64 {
			prev := f.limit
			if l >= 0 {
				f.limit = l
				f.sets = append(f.sets, l)
			}
			return prev
		},
		physical: func() (int64, error) { return phys, nil },
	}
}

func noGoLimit() *fakeEnv { return &fakeEnv{limit: math.MaxInt64} }

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestCgroupLimit(t *testing.T) {
	v2self := file("0::/kubepods/pod1/c1\n")
	v1self := file("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")
	tests := []struct {
		name   string
		fsys   fstest.MapFS
		want   int64
		source SizingSource
		err    string
	}{
		{"no cgroup files", fstest.MapFS{}, 0, 0, ""},
		{"v2 namespaced root", fstest.MapFS{
			"proc/self/cgroup":          file("0::/\n"),
			"sys/fs/cgroup/memory.max":  file("536870912\n"),
			"sys/fs/cgroup/memory.high": file("max\n"),
		}, 512 << 20, SourceCgroupV2, ""},
		{"v2 max means none", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, 0, ""},
		{"v2 leaf smaller than parent", fstest.MapFS{
			"proc/self/cgroup":                          v2self,
			"sys/fs/cgroup/kubepods/memory.max":         file("8589934592"),
			"sys/fs/cgroup/kubepods/pod1/memory.max":    file("2147483648"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": file("max"),
		}, 2 * gib, SourceCgroupV2, ""},
		{"v2 parent smaller than leaf", fstest.MapFS{
			"proc/self/cgroup":                          v2self,
			"sys/fs/cgroup/kubepods/memory.max":         file("1073741824"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": file("4294967296"),
		}, gib, SourceCgroupV2, ""},
		{"v2 path not visible: root read", fstest.MapFS{
			"proc/self/cgroup":         v2self,
			"sys/fs/cgroup/memory.max": file("1073741824"),
		}, gib, SourceCgroupV2, ""},
		{"v2 without proc/self/cgroup", fstest.MapFS{
			"sys/fs/cgroup/memory.max": file("1073741824"),
		}, gib, SourceCgroupV2, ""},
		{"v1 memory controller path", fstest.MapFS{
			"proc/self/cgroup":                                      v1self,
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": file("268435456\n"),
		}, 256 << 20, SourceCgroupV1, ""},
		{"v1 unlimited", fstest.MapFS{
			"proc/self/cgroup":                           v1self,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, 0, ""},
		{"v1 path not visible (this machine's layout)", fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/process_api/8c70\n0::/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("1073741824\n"),
		}, gib, SourceCgroupV1, ""},
		{"v2 wins over v1", fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/\n0::/\n"),
			"sys/fs/cgroup/memory.max":                   file("1073741824"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("536870912"),
		}, gib, SourceCgroupV2, ""},
		{"malformed limit", fstest.MapFS{
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0, 0, `/sys/fs/cgroup/memory.max is "lots"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, source, err := cgroupLimit(tc.fsys)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.ErrorContains(t, err, "Config.Budget")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			if tc.want > 0 {
				require.Equal(t, tc.source, source)
			}
		})
	}
}

// The system memory is the first set of Config.SystemMemory, the Go memory limit, the cgroup v2
// then v1 limit and physical memory; Sizing reports which.
func TestSizingSource(t *testing.T) {
	cgroupV1 := fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": file("2147483648")}
	cgroupV2 := fstest.MapFS{"sys/fs/cgroup/memory.max": file("3221225472"), "sys/fs/cgroup/memory/memory.limit_in_bytes": file("2147483648")}
	tests := []struct {
		name    string
		cfg     Config
		goLimit int64
		fsys    fstest.MapFS
		source  SizingSource
		system  int64
		onHeap  int64
	}{
		{"budget", Config{Budget: 16 << 20}, math.MaxInt64, cgroupV2, SourceBudget, 16 << 20, 16 << 20},
		{"system memory", Config{SystemMemory: gib}, 512 << 20, cgroupV2, SourceSystemMemory, gib, scale(gib-DefaultReservedMemory, 0.6)},
		{"go memory limit", Config{}, gib, cgroupV2, SourceGoMemoryLimit, gib, scale(gib-DefaultReservedMemory, 0.6)},
		{"cgroup v2", Config{}, math.MaxInt64, cgroupV2, SourceCgroupV2, 3 * gib, scale(3*gib-DefaultReservedMemory, 0.6)},
		{"cgroup v1", Config{}, math.MaxInt64, cgroupV1, SourceCgroupV1, 2 * gib, scale(2*gib-DefaultReservedMemory, 0.6)},
		{"physical", Config{}, math.MaxInt64, fstest.MapFS{}, SourcePhysicalMemory, 8 * gib, scale(8*gib-DefaultReservedMemory, 0.6)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEnv{limit: tc.goLimit}
			m, err := newUnifiedManager(tc.cfg, f.env(tc.fsys, 8*gib))
			require.NoError(t, err)
			s := m.Sizing()
			require.Equal(t, tc.source, s.Source)
			require.Equal(t, tc.system, s.SystemMemory)
			require.Equal(t, tc.onHeap, s.OnHeap)
			require.Equal(t, tc.onHeap, m.Metrics().Pools[OnHeap].Max)
			require.Zero(t, s.GoMemoryLimit)
			require.Empty(t, f.sets, "the Go memory limit is only read")
		})
	}
}

// Config.Budget is the unified region: the obvious one-field budget works.
func TestBudget(t *testing.T) {
	m, err := newUnifiedManager(Config{Budget: 16 << 20}, noGoLimit().env(nil, 8*gib))
	require.NoError(t, err)
	p := m.Metrics().Pools[OnHeap]
	require.EqualValues(t, 16<<20, p.Max)
	require.EqualValues(t, 8<<20, p.StorageRegion)
	require.Equal(t, DefaultNonSpillwayBase+(4<<20), m.Sizing().NonSpillwayAllowance)
}

// Impossible configurations get errors naming the Go fields and the sizes.
func TestSizingErrors(t *testing.T) {
	cgroup := fstest.MapFS{"sys/fs/cgroup/memory.max": file("268435456")} // 256 MiB
	tests := []struct {
		name    string
		cfg     Config
		goLimit int64
		want    []string
	}{
		{"system memory below 1.5 × reserved", Config{SystemMemory: 16 << 20}, math.MaxInt64,
			[]string{"INVALID_DRIVER_MEMORY.SYSTEM_MEMORY", "Config.SystemMemory 16 MiB", "450 MiB", "Config.ReservedMemory 300 MiB", "Config.Budget"}},
		{"cgroup limit below 1.5 × reserved", Config{}, math.MaxInt64,
			[]string{"Config.SystemMemory (unset, so the cgroup v2 memory limit (memory.max)) 256 MiB", "450 MiB"}},
		{"go limit below 1.5 × reserved", Config{}, 100 << 20,
			[]string{"Config.SystemMemory (unset, so the Go memory limit) 100 MiB"}},
		{"negative budget", Config{Budget: -1}, math.MaxInt64, []string{"Config.Budget -1 is negative"}},
		{"budget with system memory", Config{Budget: 16 << 20, SystemMemory: gib, Fraction: 0.5}, math.MaxInt64,
			[]string{"Config.Budget (16 MiB)", "Config.SystemMemory (1.0 GiB)", "Config.Fraction (0.5)"}},
		{"budget with reserved memory", Config{Budget: 16 << 20, ReservedMemory: NoReservedMemory}, math.MaxInt64,
			[]string{"Config.Budget (16 MiB)", "Config.ReservedMemory (-1 B)"}},
		{"budget above the cgroup limit", Config{Budget: 512 << 20}, math.MaxInt64,
			[]string{"Config.Budget 512 MiB", "exceeds the cgroup v2 memory limit (memory.max), 256 MiB"}},
		{"budget above the go limit", Config{Budget: 64 << 20}, 48 << 20,
			[]string{"Config.Budget 64 MiB", "exceeds the Go memory limit, 48 MiB"}},
		{"negative allowance", Config{Budget: 16 << 20, SetGoMemoryLimit: true, NonSpillwayAllowance: -5}, math.MaxInt64,
			[]string{"Config.NonSpillwayAllowance -5 is negative"}},
		{"go limit above the cgroup limit", Config{Budget: 200 << 20, SetGoMemoryLimit: true}, math.MaxInt64,
			[]string{"Config.Budget 200 MiB + Config.NonSpillwayAllowance 82 MiB + Config.OffHeapSize 0 B = 282 MiB exceeds the cgroup v2 memory limit (memory.max), 256 MiB"}},
		{"go limit plus off-heap above the cgroup limit", Config{Budget: 100 << 20, SetGoMemoryLimit: true, NonSpillwayAllowance: 50 << 20, OffHeapSize: 120 << 20}, math.MaxInt64,
			[]string{"Config.Budget 100 MiB + Config.NonSpillwayAllowance 50 MiB + Config.OffHeapSize 120 MiB = 270 MiB exceeds"}},
		{"go limit below the minimum", Config{Budget: 4 << 20, SetGoMemoryLimit: true, NonSpillwayAllowance: 1 << 20}, math.MaxInt64,
			[]string{"the Go memory limit 5.0 MiB (Config.Budget 4.0 MiB + Config.NonSpillwayAllowance 1.0 MiB) is below the minimum 16 MiB"}},
		{"negative poll interval", Config{Budget: 4 << 20, UnmanagedPollInterval: -1}, math.MaxInt64,
			[]string{"Config.UnmanagedPollInterval -1ns is negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEnv{limit: tc.goLimit}
			_, err := newUnifiedManager(tc.cfg, f.env(cgroup, 8*gib))
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Empty(t, f.sets, "a failed manager sets no Go memory limit")
		})
	}
	_, err := NewUnifiedManager(Config{SystemMemory: 16 << 20})
	var ime *InsufficientMemoryError
	require.ErrorAs(t, err, &ime)
	require.Equal(t, SourceSystemMemory, ime.Source)
}

// SetGoMemoryLimit sets the Go memory limit to region + allowance, and Close restores the
// previous one (once, and not over a limit changed since).
func TestSetGoMemoryLimit(t *testing.T) {
	t.Run("default allowance, restored by Close", func(t *testing.T) {
		f := &fakeEnv{limit: math.MaxInt64}
		m, err := newUnifiedManager(Config{Budget: 64 << 20, SetGoMemoryLimit: true}, f.env(nil, 8*gib))
		require.NoError(t, err)
		want := 64<<20 + DefaultNonSpillwayBase + 16<<20
		require.Equal(t, want, f.limit)
		require.Equal(t, want, m.Sizing().GoMemoryLimit)
		require.NoError(t, m.Close())
		require.NoError(t, m.Close())
		require.Equal(t, []int64{want, math.MaxInt64}, f.sets)
	})
	t.Run("explicit allowance, sized from the system memory", func(t *testing.T) {
		f := &fakeEnv{limit: 3 * gib}
		m, err := newUnifiedManager(Config{SystemMemory: gib, ReservedMemory: NoReservedMemory, Fraction: 0.5,
			SetGoMemoryLimit: true, NonSpillwayAllowance: 100 << 20}, f.env(nil, 8*gib))
		require.NoError(t, err)
		require.Equal(t, gib/2+100<<20, f.limit)
		require.NoError(t, m.Close())
		require.Equal(t, 3*gib, f.limit)
	})
	t.Run("changed since: left in place", func(t *testing.T) {
		f := &fakeEnv{limit: math.MaxInt64}
		m, err := newUnifiedManager(Config{Budget: 64 << 20, SetGoMemoryLimit: true}, f.env(nil, 8*gib))
		require.NoError(t, err)
		f.limit = 1 * gib
		require.NoError(t, m.Close())
		require.Equal(t, 1*gib, f.limit)
	})
	t.Run("the runtime's limit", func(t *testing.T) {
		before := debug.SetMemoryLimit(-1)
		defer debug.SetMemoryLimit(before)
		m, err := NewUnifiedManager(Config{Budget: 8 << 20, SetGoMemoryLimit: true, NonSpillwayAllowance: 1 << 30})
		require.NoError(t, err)
		require.Equal(t, int64(8<<20+1<<30), debug.SetMemoryLimit(-1))
		require.NoError(t, m.Close())
		require.Equal(t, before, debug.SetMemoryLimit(-1))
	})
}

func TestPhysicalMemoryError(t *testing.T) {
	env := noGoLimit().env(nil, 0)
	env.physical = func() (int64, error) { return 0, errors.New("no sysinfo") }
	_, err := newUnifiedManager(Config{}, env)
	require.ErrorContains(t, err, "no sysinfo")
}
