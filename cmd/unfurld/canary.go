package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfurld/unfurld/engine/canary"
)

// canaryCmd runs every pattern's samples against the real upstream and
// reports per provider what still maps and what changed since the
// baseline (--baseline, or canary.baseline from the config). --record
// writes this run as the new baseline instead. Exit 1 on any regression
// (a sample changed or failed) or, when recording, on a sample left out
// because its upstream failed.
func canaryCmd(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("canary", e)
	cfgPath := configFlag(fs, e)
	prov := fs.String("provider", "", "only this provider")
	basePath := fs.String("baseline", "", "compare with this baseline `file` (default: canary.baseline from the config)")
	record := fs.String("record", "", "write this run as the baseline `file` (other providers' entries in it are kept)")
	format := fs.String("format", "text", "text or json")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintln(e.stderr, "unfurld canary: --format must be text or json")
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	var names []string
	if *prov != "" {
		if _, ok := l.reg.Get(*prov); !ok {
			fmt.Fprintf(e.stderr, "unfurld canary: no provider %q in %s\n", *prov, *cfgPath)
			return exitUsage
		}
		names = []string{*prov}
	}

	// Recording compares with nothing: the run is the new reference.
	var base *canary.Baseline
	basePathUsed := ""
	if *record == "" {
		basePathUsed = *basePath
		if basePathUsed == "" {
			basePathUsed = l.cfg.CanaryBaseline()
		}
		if basePathUsed != "" {
			var err error
			if base, err = canary.ReadBaseline(basePathUsed); err != nil {
				fmt.Fprintf(e.stderr, "unfurld canary: %v\n", err)
				return exitFailure
			}
		}
	}

	r := canary.New(canary.Options{Registry: l.reg, Timeout: l.cfg.Server.UnfurlTimeout.D()})
	rep := r.Run(ctx, names, base)
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printCanary(e.stdout, rep, basePathUsed, base)
	}
	if *record != "" {
		return recordBaseline(e, rep, *record)
	}
	if rep.Regressions() > 0 {
		return exitFailure
	}
	return exitOK
}

// recordBaseline writes rep as the baseline at path, keeping the entries
// of providers this run did not cover.
func recordBaseline(e env, rep *canary.Report, path string) int {
	b, left := canary.NewBaseline(rep)
	old, err := canary.ReadBaseline(path)
	switch {
	case err == nil:
		var covered []string
		for _, p := range rep.Providers {
			if p.Skipped == "" {
				covered = append(covered, p.Provider)
			}
		}
		b.Merge(old, covered)
	case !errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stderr, "unfurld canary: not recorded: %v\n", err)
		return exitFailure
	}
	if err := b.Write(path); err != nil {
		fmt.Fprintf(e.stderr, "unfurld canary: not recorded: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "recorded %d samples in %s\n", len(b.Samples), path)
	for _, l := range left {
		fmt.Fprintf(e.stderr, "left out (the upstream failed; run again to record it): %s\n", l)
	}
	if len(left) > 0 {
		return exitFailure
	}
	return exitOK
}

func printCanary(w io.Writer, rep *canary.Report, basePath string, base *canary.Baseline) {
	for _, p := range rep.Providers {
		if p.Skipped != "" {
			fmt.Fprintf(w, "%s: skipped: %s\n", p.Provider, p.Skipped)
			continue
		}
		ok, changed, failed := p.Counts()
		fmt.Fprintf(w, "%s: %d ok, %d changed, %d failed\n", p.Provider, ok, changed, failed)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range p.Samples {
			detail := s.Error
			switch {
			case detail != "":
			case len(s.Changes) > 0:
				detail = strings.Join(s.Changes, "; ")
			case s.Status == 200:
				detail = attributeList(s.Attributes)
			default:
				detail = "does not map"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", s.Verdict, s.Pattern, s.URL, s.Status, detail)
		}
		_ = tw.Flush()
	}
	switch {
	case base != nil:
		fmt.Fprintf(w, "compared with %s (recorded %s): %d regressions\n", basePath, base.RecordedAt.UTC().Format(time.RFC3339), rep.Regressions())
	default:
		fmt.Fprintf(w, "no baseline: %d samples do not map or failed (record one with --record FILE)\n", rep.Regressions())
	}
}

// attributeList is "id (kind), ..." in id order.
func attributeList(attrs map[string]string) string {
	ids := make([]string, 0, len(attrs))
	for id := range attrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		ids[i] = id + " (" + attrs[id] + ")"
	}
	return strings.Join(ids, ", ")
}
