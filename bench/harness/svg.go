package harness

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	svgWidth      = 1080
	svgHeight     = 520
	plotLeft      = 90
	plotRight     = 760 // the legend sits right of this
	plotTop       = 50
	plotBottom    = 460
	maxConsumers  = 6    // consumer series drawn individually; the rest are summed
	maxPolyPoints = 2000 // samples per line before the chart strides over them
)

// palette colours the consumer series.
var palette = []string{"#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

// WriteSVG draws tl as a self-contained SVG chart: the budget as a dashed line, the live heap
// (steps at each GC) and heap objects (live plus unswept garbage), the accounted memory in total,
// as storage, and per consumer (the largest few; the others summed), with spill and eviction
// events as markers along the time axis. The y axis is in human-readable binary sizes, the x
// axis in seconds.
func WriteSVG(w io.Writer, tl Timeline) error {
	bw := bufio.NewWriter(w)
	c := chart{w: bw}
	c.draw(tl)
	return bw.Flush()
}

type chart struct {
	w    *bufio.Writer
	tMax float64 // seconds
	yMax float64 // bytes
}

func (c *chart) x(t time.Duration) float64 {
	return plotLeft + t.Seconds()/c.tMax*(plotRight-plotLeft)
}

func (c *chart) y(b int64) float64 {
	return plotBottom - float64(b)/c.yMax*(plotBottom-plotTop)
}

func (c *chart) printf(format string, args ...any) { fmt.Fprintf(c.w, format, args...) }

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// line is one drawn series.
type line struct {
	name, color string
	width       float64
	dash        string
	step        bool // draw as steps (the live heap only changes at GCs)
	value       func(Sample) int64
}

func (c *chart) draw(tl Timeline) {
	samples := tl.Samples
	c.tMax = 1e-3
	if n := len(samples); n > 0 {
		c.tMax = max(c.tMax, samples[n-1].T.Seconds())
	}
	var top int64 = max(tl.Budget, 1)
	for _, s := range samples {
		top = max(top, s.LiveHeap, s.HeapObjects, s.Accounted())
	}
	yStep := sizeStep(top)
	c.yMax = math.Ceil(float64(top)*1.05/float64(yStep)) * float64(yStep)

	c.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	c.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	c.printf(`<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", plotLeft, esc(tl.Title))
	c.axes(yStep)

	lines := c.lines(tl)
	for _, l := range lines {
		c.polyline(samples, l)
	}
	c.events(tl.Events)
	c.legend(lines, tl.Events)
	c.printf("</svg>\n")
}

// lines picks the series to draw, in drawing order.
func (c *chart) lines(tl Timeline) []line {
	ls := []line{
		{name: "heap objects (live + garbage)", color: "#bbbbbb", width: 1, value: func(s Sample) int64 { return s.HeapObjects }},
		{name: "live heap (/gc/heap/live)", color: "#000000", width: 2, step: true, value: func(s Sample) int64 { return s.LiveHeap }},
	}
	if tl.Budget > 0 {
		budget := tl.Budget
		ls = append(ls, line{name: "budget " + ibytes(budget), color: "#d62728", width: 1.5, dash: "8 4", value: func(Sample) int64 { return budget }})
	}
	var accounted, storage bool
	for _, s := range tl.Samples {
		accounted = accounted || s.Accounted() > 0
		storage = storage || s.Storage > 0
	}
	if accounted {
		ls = append(ls, line{name: "accounted (execution + storage)", color: "#ff7f0e", width: 2.5, value: Sample.Accounted})
	}
	if storage {
		ls = append(ls, line{name: "storage (cached + unroll)", color: "#2ca02c", width: 1.5, dash: "4 2", value: func(s Sample) int64 { return s.Storage }})
	}

	// Consumers, largest peak first; beyond maxConsumers they are summed into one line.
	type ranked struct {
		i    int
		peak int64
	}
	var rs []ranked
	for i := range tl.Series {
		var peak int64
		for _, s := range tl.Samples {
			if i < len(s.Consumers) {
				peak = max(peak, s.Consumers[i])
			}
		}
		if peak > 0 {
			rs = append(rs, ranked{i, peak})
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return cmp.Compare(b.peak, a.peak) })
	at := func(s Sample, i int) int64 {
		if i < len(s.Consumers) {
			return s.Consumers[i]
		}
		return 0
	}
	for k, r := range rs {
		if k == maxConsumers && len(rs) > maxConsumers+1 {
			rest := rs[k:]
			ls = append(ls, line{name: fmt.Sprintf("%d other consumers", len(rest)), color: "#7f7f7f", width: 1, dash: "2 2",
				value: func(s Sample) int64 {
					var sum int64
					for _, r := range rest {
						sum += at(s, r.i)
					}
					return sum
				}})
			break
		}
		i := r.i
		ls = append(ls, line{name: tl.Series[i], color: palette[k%len(palette)], width: 1.2, value: func(s Sample) int64 { return at(s, i) }})
	}
	return ls
}

func (c *chart) axes(yStep int64) {
	c.printf(`<g stroke="#e0e0e0" stroke-width="1">` + "\n")
	for b := int64(0); float64(b) <= c.yMax; b += yStep {
		c.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s"/>`+"\n", plotLeft, num(c.y(b)), plotRight, num(c.y(b)))
	}
	tStep := timeStep(c.tMax)
	for t := 0.0; t <= c.tMax+1e-9; t += tStep {
		x := plotLeft + t/c.tMax*(plotRight-plotLeft)
		c.printf(`<line x1="%s" y1="%d" x2="%s" y2="%d"/>`+"\n", num(x), plotTop, num(x), plotBottom)
	}
	c.printf("</g>\n")
	c.printf(`<g text-anchor="end">` + "\n")
	for b := int64(0); float64(b) <= c.yMax; b += yStep {
		c.printf(`<text x="%d" y="%s">%s</text>`+"\n", plotLeft-6, num(c.y(b)+4), esc(ibytes(b)))
	}
	c.printf("</g>\n")
	c.printf(`<g text-anchor="middle">` + "\n")
	for t := 0.0; t <= c.tMax+1e-9; t += tStep {
		x := plotLeft + t/c.tMax*(plotRight-plotLeft)
		c.printf(`<text x="%s" y="%d">%ss</text>`+"\n", num(x), plotBottom+18, strconv.FormatFloat(t, 'g', 4, 64))
	}
	c.printf(`<text x="%d" y="%d">time since start</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+40)
	c.printf("</g>\n")
	c.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n",
		plotLeft, plotTop, plotRight-plotLeft, plotBottom-plotTop)
}

func (c *chart) polyline(samples []Sample, l line) {
	if len(samples) == 0 {
		return
	}
	stride := (len(samples) + maxPolyPoints - 1) / maxPolyPoints
	var pts strings.Builder
	prevY := ""
	for i := 0; i < len(samples); i += stride {
		s := samples[i]
		if i+stride >= len(samples) {
			s = samples[len(samples)-1] // always end at the last sample
		}
		x, y := num(c.x(s.T)), num(c.y(l.value(s)))
		if l.step && prevY != "" && prevY != y {
			fmt.Fprintf(&pts, "%s,%s ", x, prevY)
		}
		fmt.Fprintf(&pts, "%s,%s ", x, y)
		prevY = y
	}
	dash := ""
	if l.dash != "" {
		dash = fmt.Sprintf(` stroke-dasharray="%s"`, l.dash)
	}
	c.printf(`<polyline fill="none" stroke="%s" stroke-width="%s"%s points="%s"><title>%s</title></polyline>`+"\n",
		l.color, num(l.width), dash, strings.TrimSpace(pts.String()), esc(l.name))
}

// events marks spills (orange triangles) and evictions (purple diamonds) along the x axis.
func (c *chart) events(events []Event) {
	for _, e := range events {
		x := c.x(e.T)
		switch e.Kind {
		case EventSpill:
			y := float64(plotBottom - 2)
			c.printf(`<path d="M%s %s l-5 -9 h10 z" fill="#ff7f0e" stroke="#a04000"><title>%s: %d spill(s), %s written</title></path>`+"\n",
				num(x), num(y), esc(e.T.Round(time.Millisecond).String()), e.Count, esc(ibytes(e.Bytes)))
		case EventEvict:
			y := float64(plotBottom - 16)
			c.printf(`<path d="M%s %s l5 5 l-5 5 l-5 -5 z" fill="#9467bd" stroke="#4b2a6e"><title>%s: %d block(s) evicted</title></path>`+"\n",
				num(x), num(y-5), esc(e.T.Round(time.Millisecond).String()), e.Count)
		}
	}
}

func (c *chart) legend(lines []line, events []Event) {
	x, y := plotRight+15, plotTop+5
	for _, l := range lines {
		dash := ""
		if l.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, l.dash)
		}
		c.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s"%s/>`+"\n", x, y, x+24, y, l.color, num(l.width), dash)
		c.printf(`<text x="%d" y="%d">%s</text>`+"\n", x+30, y+4, esc(shorten(l.name, 32)))
		y += 20
	}
	var spills, evicts int64
	for _, e := range events {
		if e.Kind == EventSpill {
			spills += e.Count
		} else {
			evicts += e.Count
		}
	}
	if spills > 0 {
		c.printf(`<path d="M%d %d l-5 -9 h10 z" fill="#ff7f0e" stroke="#a04000"/>`+"\n", x+12, y+4)
		c.printf(`<text x="%d" y="%d">spill (%d in all)</text>`+"\n", x+30, y+4, spills)
		y += 20
	}
	if evicts > 0 {
		c.printf(`<path d="M%d %d l5 5 l-5 5 l-5 -5 z" fill="#9467bd" stroke="#4b2a6e"/>`+"\n", x+12, y-5)
		c.printf(`<text x="%d" y="%d">eviction (%d in all)</text>`+"\n", x+30, y+4, evicts)
	}
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// sizeStep is a power-of-two grid step giving 4 to 8 lines up to top.
func sizeStep(top int64) int64 {
	step := int64(1)
	for top/step > 8 {
		step *= 2
	}
	return step
}

// timeStep is a 1-2-5 grid step in seconds giving at most 10 lines up to tMax.
func timeStep(tMax float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(tMax)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10} {
		if tMax/(p*m) <= 10 {
			return p * m
		}
	}
	return p * 10
}
