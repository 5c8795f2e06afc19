package memory

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAllocatePage is one task allocating a page, writing one byte per 4 KiB of it (the
// first touch of every OS page, as a consumer filling it does) and freeing it, in a loop: what a
// sorter or map that spills and starts again pays for its pages.
func BenchmarkAllocatePage(b *testing.B) {
	for _, mode := range []Mode{OnHeap, OffHeap} {
		for _, size := range []int64{1 << 20, 64 << 20} {
			b.Run(fmt.Sprintf("%s/%dMiB", mode, size>>20), func(b *testing.B) {
				cfg := Config{SystemMemory: 1 << 30, ReservedMemory: NoReservedMemory, Fraction: 1, NumCores: 1}
				if mode == OffHeap {
					cfg.OffHeapEnabled, cfg.OffHeapSize = true, 1<<30
				}
				m, err := NewUnifiedManager(cfg)
				if err != nil {
					b.Fatal(err)
				}
				tm := NewTaskManager(m, 1, TaskConfig{})
				c := newTestConsumer(tm, mode, "bench")
				ctx := context.Background()
				b.SetBytes(size)
				for b.Loop() {
					p, err := tm.AllocatePage(ctx, size, c)
					if err != nil {
						b.Fatal(err)
					}
					data := p.Bytes()
					for i := 0; i < len(data); i += 4096 {
						data[i] = 1
					}
					tm.FreePage(p, c)
				}
				b.StopTimer()
				if leaked := tm.Close(); leaked != 0 {
					b.Fatalf("leaked %d bytes", leaked)
				}
			})
		}
	}
}
