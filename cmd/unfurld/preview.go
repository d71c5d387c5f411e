package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/fixture"
	"github.com/unfurld/unfurld/engine/provider"
)

// preview is the dry run: match a URL, call the upstream as configured and
// print exactly the JSON the unfurl callback would return. --trace shows
// why, on stderr, so stdout stays the JSON. --record keeps the run as a
// fixture case: the answers come from the provider's own upstream client
// (provider.UnfurlOptions.Record), so what is recorded is what was used.
func preview(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("preview", e)
	cfgPath := configFlag(fs, e)
	trace := fs.Bool("trace", false, "show the matched pattern, groups, upstream requests and each attribute on stderr")
	tok := fs.String("token", "", "upstream credential to use instead of the provider's (default $UNFURLD_PREVIEW_TOKEN)")
	name := fs.String("provider", "", "provider to use (default: the first whose patterns match)")
	record := fs.String("record", "", "write this run as a fixture case under `DIR`/<provider>/<case>/, for unfurld test DIR")
	caseName := fs.String("case", "", "with --record: the case's `name` (default: the pattern's name and captured groups)")
	expectErr := fs.Bool("expect-error", false, "with --record: the answer is an error operation the case expects (a \"not found\" case)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "usage: unfurld preview --config FILE [--trace] [--token T] [--record DIR [--case NAME] [--expect-error]] URL")
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
	opts := provider.UnfurlOptions{Trace: *trace, NoCache: true}
	var answers []provider.Exchange
	if *record != "" {
		opts.Record = func(x provider.Exchange) { answers = append(answers, x) }
	}
	r := p.Unfurl(ctx, uri, cred, opts)
	if r.Trace != nil {
		printTrace(e.stderr, r.Trace)
	}
	fmt.Fprintln(e.stdout, string(r.Body))
	if *record != "" {
		return recordCase(e, p, uri, r, answers, *record, *caseName, *expectErr)
	}
	if r.Error != nil {
		return exitFailure
	}
	return exitOK
}

// recordCase writes the run as DIR/<provider>/<case>/ (fixture.Record).
func recordCase(e env, p *provider.Provider, uri string, r *provider.Result, answers []provider.Exchange, dir, name string, expectErr bool) int {
	m, err := p.Match(uri)
	if err != nil {
		fmt.Fprintf(e.stderr, "not recorded: no pattern of %s matches %s\n", p.Name, uri)
		return exitFailure
	}
	if name == "" {
		name = defaultCaseName(m)
	} else if !validCaseName(name) {
		fmt.Fprintf(e.stderr, "not recorded: case name %q: use letters, digits, '.', '_' and '-'\n", name)
		return exitFailure
	}
	switch {
	case r.Error != nil && !expectErr:
		fmt.Fprintf(e.stderr, "not recorded: the answer is an error operation (%d %q); run with --trace to see why, or add --expect-error to record a case that expects it\n", r.Error.Status, r.Error.Message)
		return exitFailure
	case r.Error == nil && expectErr:
		fmt.Fprintln(e.stderr, "not recorded: --expect-error given, but the answer has attributes")
		return exitFailure
	}
	caseDir := filepath.Join(dir, p.Name, name)
	if err := fixture.Record(caseDir, uri, r, answers, expectErr); err != nil {
		fmt.Fprintf(e.stderr, "not recorded: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "recorded %s (%d upstream answers); check it with: unfurld test --config FILE %s\n", caseDir, len(answers), dir)
	return exitOK
}

// validCaseName keeps a case name one portable path element: ASCII
// letters, digits, '.', '_' and '-', not starting with a dot.
func validCaseName(name string) bool {
	if name == "" || len(name) > 100 || name[0] == '.' {
		return false
	}
	for _, c := range name {
		if !caseNameChar(c) && c != '-' {
			return false
		}
	}
	return true
}

func caseNameChar(c rune) bool {
	return c < 0x80 && (unicode.IsLetter(c) || unicode.IsDigit(c) || c == '.' || c == '_')
}

// defaultCaseName is the pattern's name and the captured groups in the
// regex's order, made a portable file name: "issue-octo-org-rocket-1234".
func defaultCaseName(m *provider.Match) string {
	parts := []string{m.Pattern.Name}
	for _, g := range m.Pattern.Groups {
		if v := m.Groups[g]; v != "" {
			parts = append(parts, v)
		}
	}
	var b strings.Builder
	for _, c := range strings.Join(parts, "-") {
		switch {
		case caseNameChar(c):
			b.WriteRune(c)
		case !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if len(name) > 100 {
		name = strings.TrimRight(name[:100], "-.")
	}
	if name == "" {
		name = "case"
	}
	return name
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
