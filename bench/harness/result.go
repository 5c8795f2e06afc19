package harness

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// Result is one row of a benchmark table.
type Result struct {
	Workload string `json:"workload"`
	// Strategy is the Strategy's Label, or "baseline: <name>" for a plain-Go run.
	Strategy string `json:"strategy"`
	Baseline bool   `json:"baseline"`
	Budget   int64  `json:"budget"`
	Records  int64  `json:"records"`
	// Wall is the body's wall time; RecordsPerSec is Records / Wall.
	Wall          time.Duration `json:"wall_ns"`
	RecordsPerSec float64       `json:"records_per_sec"`
	// HeapStart is the live heap when the run started (after two forced GCs); PeakLiveHeap is the
	// largest live heap sampled during the run, HeapStart included (see the sampler's metrics).
	HeapStart    int64 `json:"heap_start"`
	PeakLiveHeap int64 `json:"peak_live_heap"`
	// PeakAccounted is the largest execution + storage memory the library accounted at a sample.
	PeakAccounted int64 `json:"peak_accounted"`
	Spills        int64 `json:"spills"`
	SpillBytes    int64 `json:"spill_bytes"`
	Evictions     int64 `json:"evictions"`
	GCCycles      int64 `json:"gc_cycles"`
	// TimeRatio and HeapRatio are Wall and PeakLiveHeap divided by those of the workload's first
	// baseline row (SetRatios); 0 when there is none.
	TimeRatio float64 `json:"time_ratio"`
	HeapRatio float64 `json:"heap_ratio"`
	// Timeline is the file the run's SVG timeline was written to, if any.
	Timeline string `json:"timeline,omitempty"`
	// Err is the run's error text, empty on success.
	Err string `json:"error,omitempty"`
}

// HeapBudgetRatio is PeakLiveHeap divided by Budget (0 without a budget): above 1, the heap
// outgrew the memory the library was given.
func (r Result) HeapBudgetRatio() float64 {
	if r.Budget <= 0 {
		return 0
	}
	return float64(r.PeakLiveHeap) / float64(r.Budget)
}

// SetRatios fills TimeRatio and HeapRatio of every row from the first successful baseline row
// of the same workload.
func SetRatios(rows []Result) {
	ref := map[string]Result{}
	for _, r := range rows {
		if _, ok := ref[r.Workload]; !ok && r.Baseline && r.Err == "" {
			ref[r.Workload] = r
		}
	}
	for i := range rows {
		b, ok := ref[rows[i].Workload]
		if !ok {
			continue
		}
		if b.Wall > 0 {
			rows[i].TimeRatio = float64(rows[i].Wall) / float64(b.Wall)
		}
		if b.PeakLiveHeap > 0 {
			rows[i].HeapRatio = float64(rows[i].PeakLiveHeap) / float64(b.PeakLiveHeap)
		}
	}
}

func ibytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

// WriteTable writes rows as an aligned text table, sizes human-readable.
func WriteTable(w io.Writer, rows []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\trun\tbudget\trecords\twall\trec/s\ttime\tpeak heap\theap\theap/budget\tpeak acct\tspills\tspilled\tevict\tGCs\t")
	for _, r := range rows {
		if r.Err != "" {
			// The error is trailing text outside the aligned cells, on one line.
			fmt.Fprintf(tw, "%s\t%s\t%s\t  FAILED: %s\n", r.Workload, r.Strategy, ibytes(r.Budget), strings.Join(strings.Fields(r.Err), " "))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t\n",
			r.Workload, r.Strategy, ibytes(r.Budget), r.Records, r.Wall.Round(time.Millisecond),
			humanize.SIWithDigits(r.RecordsPerSec, 2, ""), ratio(r.TimeRatio),
			ibytes(r.PeakLiveHeap), ratio(r.HeapRatio), ratio(r.HeapBudgetRatio()), ibytes(r.PeakAccounted),
			r.Spills, ibytes(r.SpillBytes), r.Evictions, r.GCCycles)
	}
	return tw.Flush()
}

// WriteJSON writes rows as an indented JSON array.
func WriteJSON(w io.Writer, rows []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

// csvHeader names the CSV columns, in the order of csvRecord.
var csvHeader = []string{
	"workload", "strategy", "baseline", "budget", "records", "wall_ns", "records_per_sec",
	"heap_start", "peak_live_heap", "peak_accounted", "spills", "spill_bytes", "evictions",
	"gc_cycles", "time_ratio", "heap_ratio", "timeline", "error",
}

func csvRecord(r Result) []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return []string{
		r.Workload, r.Strategy, strconv.FormatBool(r.Baseline), i(r.Budget), i(r.Records),
		i(int64(r.Wall)), f(r.RecordsPerSec), i(r.HeapStart), i(r.PeakLiveHeap), i(r.PeakAccounted),
		i(r.Spills), i(r.SpillBytes), i(r.Evictions), i(r.GCCycles), f(r.TimeRatio), f(r.HeapRatio),
		r.Timeline, r.Err,
	}
}

// WriteCSV writes rows as CSV with a header line; sizes are in bytes and times in nanoseconds.
func WriteCSV(w io.Writer, rows []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(csvRecord(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadCSV reads what WriteCSV wrote.
func ReadCSV(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(csvHeader)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("harness: reading CSV: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("harness: reading CSV: no header")
	}
	for i, h := range csvHeader {
		if recs[0][i] != h {
			return nil, fmt.Errorf("harness: reading CSV: column %d is %q, want %q", i+1, recs[0][i], h)
		}
	}
	rows := make([]Result, 0, len(recs)-1)
	for line, rec := range recs[1:] {
		p := parser{rec: rec}
		r := Result{Workload: rec[0], Strategy: rec[1], Timeline: rec[16], Err: rec[17]}
		r.Baseline = p.bool(2)
		r.Budget, r.Records, r.Wall = p.int(3), p.int(4), time.Duration(p.int(5))
		r.RecordsPerSec = p.float(6)
		r.HeapStart, r.PeakLiveHeap, r.PeakAccounted = p.int(7), p.int(8), p.int(9)
		r.Spills, r.SpillBytes, r.Evictions, r.GCCycles = p.int(10), p.int(11), p.int(12), p.int(13)
		r.TimeRatio, r.HeapRatio = p.float(14), p.float(15)
		if p.err != nil {
			return nil, fmt.Errorf("harness: reading CSV line %d: %w", line+2, p.err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// parser converts CSV fields, keeping the first error.
type parser struct {
	rec []string
	err error
}

func (p *parser) fail(i int, err error) {
	if p.err == nil {
		p.err = fmt.Errorf("column %s: %w", csvHeader[i], err)
	}
}

func (p *parser) int(i int) int64 {
	n, err := strconv.ParseInt(p.rec[i], 10, 64)
	if err != nil {
		p.fail(i, err)
	}
	return n
}

func (p *parser) float(i int) float64 {
	x, err := strconv.ParseFloat(p.rec[i], 64)
	if err != nil {
		p.fail(i, err)
	}
	return x
}

func (p *parser) bool(i int) bool {
	b, err := strconv.ParseBool(p.rec[i])
	if err != nil {
		p.fail(i, err)
	}
	return b
}
