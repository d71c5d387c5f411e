package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the result table.
type row struct {
	scenario, measured, baseline, result, target string
	pass                                         bool
	errs                                         int // failed requests
}

// report collects the table, the absolute figures behind it and notes.
type report struct {
	rows    []row
	details []string
	notes   []string
}

func (r *report) add(x row) { r.rows = append(r.rows, x) }

// detail records the absolute figures of both sides of a scenario.
func (r *report) detail(scenario string, sides ...stats) {
	for _, s := range sides {
		cpu := "-"
		if c, ok := s.cpuPerRequest(); ok {
			cpu = dur(c)
		}
		r.details = append(r.details, fmt.Sprintf("%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s",
			scenario, s.name, s.requests, s.errors, rate(s), dur(s.percentile(0.5)), dur(s.percentile(0.9)),
			dur(s.percentile(0.99)), dur(s.percentile(1)), cpu))
	}
}

func (r *report) note(scenario, text string) {
	r.notes = append(r.notes, scenario+": "+text)
}

// failed reports whether any request failed.
func (r *report) failed() bool {
	for _, x := range r.rows {
		if x.errs > 0 {
			return true
		}
	}
	return false
}

// print writes the header, the table and the details.
func (r *report) print(w io.Writer, header []string) {
	for _, h := range header {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmeasured\tbaseline\tratio/overhead\ttarget\tresult")
	for _, x := range r.rows {
		verdict := "FAIL"
		switch {
		case x.errs > 0:
			verdict = fmt.Sprintf("ERROR (%d failed requests)", x.errs)
		case x.pass:
			verdict = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.scenario, x.measured, x.baseline, x.result, x.target, verdict)
	}
	_ = tw.Flush()
	if len(r.details) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "absolute figures (merged rounds, warm-up excluded):")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tside\trequests\terrors\tthroughput\tp50\tp90\tp99\tmax\tserver CPU/req\t")
		for _, d := range r.details {
			fmt.Fprintln(tw, d+"\t")
		}
		_ = tw.Flush()
	}
	for _, n := range r.notes {
		fmt.Fprintln(w, "note", n)
	}
}

// rate formats a throughput.
func rate(s stats) string {
	return fmt.Sprintf("%.0f req/s", s.throughput())
}

// dur formats a duration with a precision that suits its size.
func dur(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	var s string
	switch {
	case d < time.Millisecond:
		s = fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		s = fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	default:
		s = fmt.Sprintf("%.3fs", d.Seconds())
	}
	return neg + strings.TrimSpace(s)
}
