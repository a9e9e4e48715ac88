package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

var seriesColors = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// writeChart draws messages/s against round-trip time, one line per
// client, with a logarithmic y axis, as a self-contained SVG.
func writeChart(path string, rs []result, cfg config) error {
	const (
		width, height = 820, 480
		left, right   = 80, 250
		top, bottom   = 60, 60
		plotW, plotH  = width - left - right, height - top - bottom
	)
	names, pts, maxRTT, lo, hi := chartSeries(rs)
	if len(names) == 0 {
		return fmt.Errorf("chart: no results")
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi == dLo {
		dHi++
	}
	px := func(x float64) float64 { return left + x/maxRTT*plotW }
	py := func(y float64) float64 { return top + plotH - (math.Log10(y)-dLo)/(dHi-dLo)*plotH }

	var b bytes.Buffer
	esc := func(s string) string {
		var e strings.Builder
		xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Messages per second against round-trip time</text>`+"\n", left)
	msgs := cfg.messages
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%d messages × %d octets × %d recipients over one connection; delaying loopback proxy, discarding server</text>`+"\n",
		left, msgs, bodySize, len(recipients))

	writeYGrid(&b, dLo, dHi, py, left, plotW)
	// X axis: a tick at every measured round-trip time.
	var xs []float64
	for _, p := range pts[names[0]] {
		xs = append(xs, p[0])
	}
	for _, x := range xs {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", px(x), top, px(x), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", px(x), top+plotH+18, x)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">round-trip time (ms), added by the proxy</text>`+"\n", left+plotW/2, height-18)
	fmt.Fprintf(&b, `<text transform="translate(22 %d) rotate(-90)" text-anchor="middle">messages/s (log scale)</text>`+"\n", top+plotH/2)

	// Lines, points, values.
	for i, name := range names {
		color := seriesColors[i%len(seriesColors)]
		var path []string
		for _, p := range pts[name] {
			path = append(path, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), color)
		for _, p := range pts[name] {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", px(p[0]), py(p[1]), color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s</text>`+"\n", px(p[0])+5, py(p[1])-6, color, fmtCount(p[1]))
		}
		// Legend.
		ly := top + 10 + i*22
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", left+plotW+16, ly, left+plotW+40, ly, color)
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3.5" fill="%s"/>`+"\n", left+plotW+28, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+plotW+46, ly+4, esc(name))
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// chartSeries collects the points of each client's series, in the order of
// the clients, and the bounds of the data (a zero largest RTT made 1).
func chartSeries(rs []result) (names []string, pts map[string][][2]float64, maxRTT, lo, hi float64) {
	pts = map[string][][2]float64{}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		if !slices.Contains(names, r.client) {
			names = append(names, r.client)
		}
		x, y := float64(r.rtt)/float64(time.Millisecond), r.msgsPerSec()
		pts[r.client] = append(pts[r.client], [2]float64{x, y})
		maxRTT, lo, hi = max(maxRTT, x), min(lo, y), max(hi, y)
	}
	if maxRTT == 0 {
		maxRTT = 1
	}
	return names, pts, maxRTT, lo, hi
}

// writeYGrid draws the grid and the y axis: decades from 10^dLo to 10^dHi,
// with 2 and 5 between.
func writeYGrid(b *bytes.Buffer, dLo, dHi float64, py func(float64) float64, left, plotW int) {
	for d := dLo; d <= dHi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == dHi && m > 1 {
				break
			}
			y := py(v)
			if m != 1 {
				fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left, y, left+plotW, y)
				fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#999" font-size="10">%s</text>`+"\n", left-6, y+4, fmtTick(v))
				continue
			}
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ccc"/>`+"\n", left, y, left+plotW, y)
			fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, fmtTick(v))
		}
	}
}

// fmtTick formats an axis value: 1, 20, 500, 1k, 20k.
func fmtTick(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", v/1000)
	}
	return fmt.Sprintf("%g", v)
}

// fmtCount formats a rate for a label: 3 significant digits, k for
// thousands.
func fmtCount(v float64) string {
	switch {
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
