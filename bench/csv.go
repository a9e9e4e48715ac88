package main

import (
	"encoding/csv"
	"os"
	"strconv"
	"time"
)

// writeCSV writes every measurement and every checked ratio to path, one
// row each; kind is "rtt" (over the proxy), "smtp-sink/" and the placement
// (split, same, off), "throughput" or "target". Empty cells do not apply; note holds an error or why a
// target was not checked.
func writeCSV(path string, rep *report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"kind", "name", "rtt_ms", "measured_rtt_ms", "messages", "octets",
		"elapsed_s", "msgs_per_s", "turnarounds", "turnarounds_per_msg", "mb_per_s",
		"value", "target", "result", "note"})
	num := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	ms := func(d time.Duration) string { return num(float64(d)/1e6, 3) }
	errText := func(err error) string {
		if err != nil {
			return err.Error()
		}
		return ""
	}
	row := func(kind string, r result) {
		rec := []string{kind, r.client, ms(r.rtt), "", strconv.Itoa(r.messages), strconv.Itoa(bodySize),
			num(r.elapsed.Seconds(), 6), "", "", "", "", "", "", "", errText(r.err)}
		if kind == "rtt" {
			rec[3] = ms(r.effRTT)
		}
		if r.err == nil {
			rec[7] = num(r.msgsPerSec(), 1)
			if r.turnarounds >= 0 {
				rec[8] = strconv.FormatInt(r.turnarounds, 10)
				rec[9] = num(r.turnsPerMsg(), 4)
			}
		}
		w.Write(rec)
	}
	for _, r := range rep.sweep {
		row("rtt", r)
	}
	for _, sr := range rep.sinks {
		for _, r := range sr.results {
			row("smtp-sink/"+sr.pin, r)
		}
	}
	for _, t := range rep.throughput {
		rec := []string{"throughput", t.name, "0", "", "1", strconv.Itoa(t.size),
			num(t.elapsed.Seconds(), 6), "", "", "", "", "", "", "", errText(t.err)}
		if t.err == nil {
			rec[10] = num(t.mbPerSec(), 1)
		}
		w.Write(rec)
	}
	for _, c := range rep.checks {
		v := ""
		if c.status != "n/a" {
			v = num(c.value, 4)
		}
		w.Write([]string{"target", c.name, "", "", "", "", "", "", "", "", "", v, c.target(), c.status, c.note})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
