package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/lanrat/extsort"
)

// runMap aggregates in a built-in Go map, all in memory whatever the budget.
func runMap(_ context.Context, w kind, p params) (outcome, error) {
	var c check
	switch w {
	case aggInt:
		m := map[int64]int64{}
		for i := range p.Records {
			m[aggKey(i, p.Keys)] += aggValue(i)
		}
		for k, v := range m {
			c.add(uint64(k), v)
		}
	case aggStr:
		// m[string(buf)] += v would allocate a string per record: a lookup by string(buf) does
		// not, so the map holds each key's index in sums and only a new key is allocated.
		m := map[string]int32{}
		var sums []int64
		buf := make([]byte, 0, 32)
		for i := range p.Records {
			buf = appendStrKey(buf[:0], aggKey(i, p.Keys))
			if j, ok := m[string(buf)]; ok {
				sums[j] += aggValue(i)
			} else {
				m[string(buf)] = int32(len(sums))
				sums = append(sums, aggValue(i))
			}
		}
		for k, j := range m {
			c.add(strID(k), sums[j])
		}
	default:
		return outcome{}, fmt.Errorf("map: no sort")
	}
	return outcome{Check: c}, nil
}

// pair is a sort record of the Go sorters.
type pair struct{ k, v int64 }

func comparePairs(a, b pair) int { return cmp.Compare(a.k, b.k) }

// runSlices sorts in memory: every pair in one slice, slices.SortFunc.
func runSlices(_ context.Context, w kind, p params) (outcome, error) {
	if w != sortPairs {
		return outcome{}, fmt.Errorf("slices.SortFunc: no aggregation")
	}
	ps := make([]pair, 0, p.Records)
	for i := range p.Records {
		ps = append(ps, pair{sortKey(i), i})
	}
	slices.SortFunc(ps, comparePairs)
	var c sortCheck
	for _, r := range ps {
		if err := c.add(r.k, r.v); err != nil {
			return outcome{}, err
		}
	}
	return outcome{Check: c.check}, nil
}

// extsortChunks is how many chunks extsort holds at once in its steady state with its default
// Config (NumWorkers 2, ChanBuffSize 1): one filling, one queued, one per sort worker. Its
// ChunkSize (a record count) is set so that these chunks fill the budget.
const extsortChunks = 1 + 1 + 2

// runExtsort sorts with lanrat/extsort's generic sorter, its default parallelism, chunks sized to
// the budget and temporary files in the run's directory.
func runExtsort(ctx context.Context, w kind, p params) (outcome, error) {
	if w != sortPairs {
		return outcome{}, fmt.Errorf("extsort: no aggregation")
	}
	cfg := extsort.DefaultConfig()
	cfg.ChunkSize = int(max(p.Budget/16/extsortChunks, 1))
	cfg.TempFilesDir = p.Dir
	in := make(chan pair, 1024)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(in)
		for i := range p.Records {
			select {
			case in <- pair{sortKey(i), i}:
			case <-ctx.Done():
				return
			}
		}
	}()
	toBytes := func(r pair) ([]byte, error) {
		b := make([]byte, 0, 16)
		return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, uint64(r.k)), uint64(r.v)), nil
	}
	fromBytes := func(b []byte) (pair, error) {
		if len(b) != 16 {
			return pair{}, fmt.Errorf("extsort: record of %d bytes, want 16", len(b))
		}
		return pair{int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))}, nil
	}
	sorter, out, errc := extsort.Generic(in, fromBytes, toBytes, comparePairs, cfg)
	sorter.Sort(ctx)
	var c sortCheck
	var err error
	for r := range out {
		if err == nil {
			err = c.add(r.k, r.v)
		}
	}
	if e := <-errc; e != nil {
		return outcome{}, e
	}
	return outcome{Check: c.check}, err
}
