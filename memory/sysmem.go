package memory

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// SizingSource says where a UnifiedManager's size came from: the first of Config.Budget,
// Config.SystemMemory, the Go memory limit, the cgroup v2 then v1 memory limit and physical
// memory that is set.
type SizingSource uint8

const (
	// SourceBudget: Config.Budget is the unified on-heap region itself.
	SourceBudget SizingSource = iota + 1
	// SourceSystemMemory: Config.SystemMemory (Spark's spark.testing.memory).
	SourceSystemMemory
	// SourceGoMemoryLimit: the Go runtime's memory limit (GOMEMLIMIT or debug.SetMemoryLimit),
	// the Go counterpart of the JVM's max heap that Spark sizes from.
	SourceGoMemoryLimit
	// SourceCgroupV2: memory.max of the process's cgroup (v2) or of one of its ancestors.
	SourceCgroupV2
	// SourceCgroupV1: memory.limit_in_bytes of the process's memory cgroup (v1).
	SourceCgroupV1
	// SourcePhysicalMemory: the machine's RAM.
	SourcePhysicalMemory
)

// String names the source as error messages and logs do.
func (s SizingSource) String() string {
	switch s {
	case SourceBudget:
		return "Config.Budget"
	case SourceSystemMemory:
		return "Config.SystemMemory"
	case SourceGoMemoryLimit:
		return "the Go memory limit"
	case SourceCgroupV2:
		return "the cgroup v2 memory limit (memory.max)"
	case SourceCgroupV1:
		return "the cgroup v1 memory limit (memory.limit_in_bytes)"
	case SourcePhysicalMemory:
		return "physical memory"
	}
	return fmt.Sprintf("SizingSource(%d)", uint8(s))
}

// environment is what sizing reads from the process and the machine. Tests replace it with fake
// cgroup trees, Go memory limits and physical memory.
type environment struct {
	// fsys is the root file system ("/"): sizing reads proc/self/cgroup and sys/fs/cgroup/... .
	fsys fs.FS
	// setGoLimit is debug.SetMemoryLimit: a negative argument only reads the limit.
	setGoLimit func(limit int64) int64
	// physical returns the machine's RAM.
	physical func() (int64, error)
	// readHeap returns the live heap of the last collection and the collections so far; nil
	// means runtime/metrics.
	readHeap func() (live, cycles uint64)
}

func hostEnvironment() environment {
	return environment{fsys: os.DirFS("/"), setGoLimit: debug.SetMemoryLimit, physical: physicalMemory}
}

// systemMemory is the memory the process may use when Config.SystemMemory is 0: the Go memory
// limit when one is set, else the machine limit.
func (env environment) systemMemory() (int64, SizingSource, error) {
	if limit := env.setGoLimit(-1); limit < math.MaxInt64 {
		return limit, SourceGoMemoryLimit, nil
	}
	return env.machineLimit()
}

// machineLimit is the memory the process may use whatever its Go runtime is told: the cgroup v2
// then v1 memory limit, else physical memory.
func (env environment) machineLimit() (int64, SizingSource, error) {
	limit, source, err := cgroupLimit(env.fsys)
	if err != nil || limit > 0 {
		return limit, source, err
	}
	phys, err := env.physical()
	return phys, SourcePhysicalMemory, err
}

// Where the cgroup file systems are mounted (the standard layout of systemd, Docker and
// Kubernetes; other mount points are not searched).
const (
	cgroupV2Root = "sys/fs/cgroup"
	cgroupV1Root = "sys/fs/cgroup/memory"
	// cgroupV1Unlimited: memory.limit_in_bytes of an unlimited v1 cgroup is the largest page
	// count times the page size (0x7FFFFFFFFFFFF000 with 4 KiB pages); anything this large is
	// "no limit".
	cgroupV1Unlimited = int64(1) << 62
)

// cgroupLimit returns the memory limit of the process's cgroup read from fsys (rooted at "/"):
// cgroup v2's memory.max, else cgroup v1's memory.limit_in_bytes, each the smallest limit of the
// process's cgroup (as /proc/self/cgroup names it) and its ancestors, as the kernel enforces the
// smallest. A cgroup directory that is not visible (a container's cgroup namespace shows its own
// cgroup as the root) is skipped. It returns 0 when no limit is set or readable, and an error only
// for a limit file it cannot parse.
func cgroupLimit(fsys fs.FS) (int64, SizingSource, error) {
	v2, v1 := procSelfCgroup(fsys)
	limit, err := smallestLimit(fsys, cgroupV2Root, v2, "memory.max")
	if err != nil || limit > 0 {
		return limit, SourceCgroupV2, err
	}
	limit, err = smallestLimit(fsys, cgroupV1Root, v1, "memory.limit_in_bytes")
	if limit >= cgroupV1Unlimited {
		limit = 0
	}
	return limit, SourceCgroupV1, err
}

// procSelfCgroup returns the process's cgroup v2 path ("0::/path") and the path of its v1 memory
// controller ("N:...,memory,...:/path"), "/" for any it cannot read.
func procSelfCgroup(fsys fs.FS) (v2, v1 string) {
	v2, v1 = "/", "/"
	f, err := fsys.Open("proc/self/cgroup")
	if err != nil {
		return v2, v1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case containsField(controllers, "memory"):
			v1 = p
		}
	}
	return v2, v1
}

func containsField(list, field string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if f == field {
			return true
		}
	}
	return false
}

// smallestLimit reads file in the cgroup directory root+p and each ancestor up to root, and
// returns the smallest limit set (0 for none). "max" means no limit.
func smallestLimit(fsys fs.FS, root, p, file string) (int64, error) {
	var smallest int64
	for dir := path.Clean("/" + p); ; dir = path.Dir(dir) {
		name := path.Join(root, dir, file)
		data, err := fs.ReadFile(fsys, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, fmt.Errorf("memory: reading the cgroup memory limit /%s (set Config.Budget or Config.SystemMemory): %w", name, err)
		default:
			s := strings.TrimSpace(string(data))
			if s == "max" {
				break
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("memory: the cgroup memory limit /%s is %q, not a byte count or \"max\" (set Config.Budget or Config.SystemMemory)", name, s)
			}
			if smallest == 0 || n < smallest {
				smallest = n
			}
		}
		if dir == "/" {
			return smallest, nil
		}
	}
}
