package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

// childArg, as the first argument, makes the binary run one attempt of one engine (described by
// the JSON second argument) and print a childResult on stdout. The parent reads the child's peak
// RSS from its rusage, so every engine's RSS is its own.
const childArg = "-peers-child"

// params is the work's size and budget, as the child gets it.
type params struct {
	Records int64  `json:"records"`
	Keys    int64  `json:"keys"`
	Budget  int64  `json:"budget"`
	Threads int    `json:"threads"`
	Dir     string `json:"dir"`
}

// outcome is what an engine's run produced.
type outcome struct {
	Check  check `json:"check"`
	Spills int64 `json:"spills"`
}

type childSpec struct {
	Work       string `json:"work"`
	Engine     string `json:"engine"`
	Params     params `json:"params"`
	CPUProfile string `json:"cpu_profile,omitempty"`
}

type childResult struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"` // user + system time of the timed part, every thread

	Outcome  outcome `json:"outcome"`
	PeakHeap uint64  `json:"peak_heap"`
	OOM      bool    `json:"oom,omitempty"`
	Err      string  `json:"err,omitempty"`
}

// engineFunc runs one work; it calls timed around the part that is measured (everything but
// opening a database).
type engineFunc func(ctx context.Context, w kind, p params, timed func(func() error) error) (outcome, error)

// goEngine times the whole of f.
func goEngine(f func(context.Context, kind, params) (outcome, error)) engineFunc {
	return func(ctx context.Context, w kind, p params, timed func(func() error) error) (o outcome, err error) {
		err = timed(func() (err error) {
			o, err = f(ctx, w, p)
			return err
		})
		return o, err
	}
}

func engines() map[string]engineFunc {
	return map[string]engineFunc{
		engSpillway: goEngine(runSpillway),
		engDuckDB:   runDuckDB,
		engMap:      goEngine(runMap),
		engSlices:   goEngine(runSlices),
		engExtsort:  goEngine(runExtsort),
	}
}

// runChild runs the attempt spec describes and prints its result as JSON.
func runChild(spec string) int {
	var sp childSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "peers: child spec:", err)
		return 2
	}
	w, ok := findWork(sp.Work)
	eng, ok2 := engines()[sp.Engine]
	if !ok || !ok2 {
		fmt.Fprintf(os.Stderr, "peers: child: unknown work %q or engine %q\n", sp.Work, sp.Engine)
		return 2
	}
	var res childResult
	timed := func(f func() error) error {
		runtime.GC()
		if sp.CPUProfile != "" {
			pf, err := os.Create(sp.CPUProfile)
			if err != nil {
				return err
			}
			defer pf.Close()
			if err := pprof.StartCPUProfile(pf); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		stop := sampleLiveHeap(&res.PeakHeap)
		defer stop()
		cpu0, start := cpuSeconds(), time.Now()
		err := f()
		res.Seconds, res.CPU = time.Since(start).Seconds(), cpuSeconds()-cpu0
		return err
	}
	o, err := eng(context.Background(), w.kind, sp.Params, timed)
	res.Outcome = o
	if err != nil {
		res.Err = err.Error()
		res.OOM = errors.Is(err, errOOM)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "peers: child:", err)
		return 2
	}
	return 0
}

// cpuSeconds is the process's user and system time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// sampleLiveHeap records into peak the largest live heap (the heap marked live by a garbage
// collection) seen every 2 ms until the returned stop is called.
func sampleLiveHeap(peak *uint64) (stop func()) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() {
		metrics.Read(sample)
		*peak = max(*peak, sample[0].Value.Uint64())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		read()
	}
}
