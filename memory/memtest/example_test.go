package memtest_test

import (
	"fmt"

	"github.com/spillway/spillway/memory/memtest"
)

// An operator's test puts Spillway's bound on its own code: the live heap may grow by at most
// the budget the operator was given plus the stated slack, at two data sizes. In a test, use
// memtest.Require and memtest.RequireFlat with the test's *testing.T instead of Check.
func Example() {
	const budget = 4 << 20
	run := func(records int) memtest.Peak {
		return memtest.Measure(func() {
			// ... run the operator over records with a budget of 4 MiB ...
		})
	}
	bound := memtest.StrictBound(budget)
	for _, records := range []int{100_000, 1_000_000} {
		if err := bound.Check(run(records)); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%d records: within %d bytes\n", records, bound.Limit())
	}
	// Output:
	// 100000 records: within 6710886 bytes
	// 1000000 records: within 6710886 bytes
}
