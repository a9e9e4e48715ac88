// Package progress draws a progress bar for the examples: in place on a
// terminal, as a few plain lines otherwise.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// A Bar shows how much of a known total is done.
type Bar struct {
	w        io.Writer
	label    string
	total    int64
	terminal bool
	start    time.Time
	lastPct  int
	lastDraw time.Time
}

// New returns a Bar for total units written to w. On a terminal it redraws
// one line; elsewhere it prints a line at every 25 %.
func New(w io.Writer, label string, total int64) *Bar {
	b := &Bar{w: w, label: label, total: total, start: time.Now(), lastPct: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.terminal = true
		}
	}
	return b
}

// Set records that done units are complete.
func (b *Bar) Set(done int64) {
	if b.total <= 0 {
		return
	}
	pct := int(done * 100 / b.total)
	if pct > 100 {
		pct = 100
	}
	if b.terminal {
		if pct == b.lastPct && time.Since(b.lastDraw) < 100*time.Millisecond {
			return
		}
		const width = 40
		filled := pct * width / 100
		fmt.Fprintf(b.w, "\r%s [%s%s] %3d%% %s", b.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, Size(done))
		b.lastDraw = time.Now()
	} else if pct/25 > b.lastPct/25 || b.lastPct < 0 {
		fmt.Fprintf(b.w, "%s %3d%% %s\n", b.label, pct, Size(done))
	}
	b.lastPct = pct
}

// Done ends the bar's line.
func (b *Bar) Done() {
	if b.terminal {
		fmt.Fprintln(b.w)
	}
}

// Size formats n octets for people: 512 B, 1.5 KiB, 64.0 MiB.
func Size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
}
