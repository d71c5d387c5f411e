package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// preview is the dry run: match a URL, call the upstream as configured and
// print exactly the JSON the unfurl callback would return. --trace shows
// why, on stderr, so stdout stays the JSON.
func preview(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("preview", e)
	cfgPath := fs.String("config", "config.yaml", "configuration `file`")
	trace := fs.Bool("trace", false, "show the matched pattern, groups, upstream requests and each attribute on stderr")
	tok := fs.String("token", "", "upstream credential to use instead of the provider's (default $UNFURLD_PREVIEW_TOKEN)")
	name := fs.String("provider", "", "provider to use (default: the first whose patterns match)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "usage: unfurld preview --config FILE [--trace] [--token T] URL")
		return exitUsage
	}
	uri := pos[0]
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	if *tok == "" {
		*tok, _ = e.lookupEnv("UNFURLD_PREVIEW_TOKEN")
	}

	var p *provider.Provider
	if *name != "" {
		var ok bool
		if p, ok = l.reg.Get(*name); !ok {
			fmt.Fprintf(e.stderr, "no provider named %q\n", *name)
			return exitFailure
		}
	} else if p, _, err = l.reg.Match(uri); err != nil {
		fmt.Fprintf(e.stderr, "no provider matches %s: %v\n", uri, err)
		p = l.reg.All()[0]
	}
	cred := provider.Credential{}
	if *tok != "" {
		cred = provider.Credential{Key: "preview", Token: config.Secret(*tok)}
	}
	r := p.Unfurl(ctx, uri, cred, provider.UnfurlOptions{Trace: *trace, NoCache: true})
	if r.Trace != nil {
		printTrace(e.stderr, r.Trace)
	}
	fmt.Fprintln(e.stdout, string(r.Body))
	if r.Error != nil {
		return exitFailure
	}
	return exitOK
}

func printTrace(w io.Writer, t *provider.Trace) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "provider\t%s\n", t.Provider)
	if t.Pattern != "" {
		fmt.Fprintf(tw, "pattern\t%s\n", t.Pattern)
	}
	for _, k := range slices.Sorted(maps.Keys(t.Groups)) {
		fmt.Fprintf(tw, "group %s\t%q\n", k, t.Groups[k])
	}
	for _, r := range t.Requests {
		cache := "miss"
		if r.CacheHit {
			cache = "hit"
		}
		if r.Skipped != "" {
			fmt.Fprintf(tw, "request %s\tskipped: %s\n", r.Name, r.Skipped)
			continue
		}
		line := fmt.Sprintf("request %s\t%s %s -> %d in %s (cache %s)", r.Name, r.Method, r.URL, r.Status, r.Latency.Round(1000), cache)
		if r.Error != "" {
			line += ": " + r.Error
		}
		fmt.Fprintln(tw, line)
	}
	for _, a := range t.Attributes {
		if a.Missing != "" {
			fmt.Fprintf(tw, "attribute %s\tmissing: %s\n", a.ID, a.Missing)
		} else {
			fmt.Fprintf(tw, "attribute %s\t%s\n", a.ID, oneLine(fmt.Sprint(a.Value)))
		}
	}
	fmt.Fprintf(tw, "outcome\t%s\n", t.Outcome)
	_ = tw.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
