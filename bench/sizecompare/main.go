// Command sizecompare prints, for every accuracy shape of estimatortest, the real growth of the
// live heap from building the value beside Spillway's estimator.Estimate and
// github.com/DmitriyVTitov/size's Of, with each estimate's error.
//
//	cd bench/sizecompare && go run .
package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/DmitriyVTitov/size"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/estimator/estimatortest"
)

func main() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\theap growth\tSpillway Estimate\terror\tsize.Of\terror\t")
	for _, sh := range estimatortest.Shapes() {
		v, real := estimatortest.HeapGrowth(sh.Build)
		est := estimator.Estimate(v)
		of := int64(size.Of(v))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t\n", sh.Name, real, est, pct(est, real), of, pct(of, real))
	}
	tw.Flush()
}

func pct(est, real int64) string {
	return fmt.Sprintf("%+.1f%%", 100*float64(est-real)/float64(real))
}
