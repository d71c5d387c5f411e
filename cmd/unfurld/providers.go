package main

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/providers"
)

// builtinInfo is one built-in provider file as `unfurld providers` lists
// it. The JSON names are what `--format json` prints.
type builtinInfo struct {
	// Name is the file's name: `include: builtin:NAME`.
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	// Domains are the hosts its links are on: notion.domain first, then
	// the other hosts of its sample URLs; "*.DOMAIN" when it serves every
	// subdomain (notion.subdomains).
	Domains []string `json:"domains"`
	// Kinds are the pattern names, in the file's order.
	Kinds []string `json:"url_kinds"`
	// Auth is one entry per way to include it: the base, then each
	// variant.
	Auth []builtinAuth `json:"auth"`
}

// builtinAuth is one way to include a built-in and how its users sign in.
type builtinAuth struct {
	Include string `json:"include"`
	Variant string `json:"variant,omitempty"`
	// Type is upstream.auth.type: none, api_key, oauth2...
	Type string `json:"type"`
}

// providersCmd lists the built-in providers: what `include: builtin:NAME`
// accepts, the links each one unfurls and how its users sign in. It needs
// no configuration: every built-in is loaded as `unfurld test` loads them.
func providersCmd(args []string, e env) int {
	flags := newFlagSet("providers", e)
	format := flags.String("format", "text", "output `format`: text or json")
	pos, err := parseFlags(flags, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "unfurld providers: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(e.stderr, "unfurld providers: --format must be text or json, got %q\n", *format)
		return exitUsage
	}
	c, errs := builtinConfig()
	if c == nil {
		// A built-in that does not load is a bug of this build.
		fmt.Fprintf(e.stderr, "unfurld providers: the built-in providers do not load:\n%s\n", errs.Error())
		return exitFailure
	}
	c.Registry.Close()
	list, err := listBuiltins(c.Config, config.ListBuiltins(providers.FS()))
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld providers: %v\n", err)
		return exitFailure
	}
	if *format == "json" {
		err = writeBuiltinsJSON(e.stdout, list)
	} else {
		err = writeBuiltinsText(e.stdout, list)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld providers: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// listBuiltins describes each built-in file from the loaded providers,
// whose names are the include names (TestBuiltinsLoad pins that).
func listBuiltins(cfg *config.Config, files []config.Builtin) ([]builtinInfo, error) {
	byName := map[string]*config.Provider{}
	for i := range cfg.Providers {
		byName[cfg.Providers[i].Name] = &cfg.Providers[i]
	}
	out := make([]builtinInfo, 0, len(files))
	for _, f := range files {
		base, ok := byName[f.Name]
		if !ok {
			return nil, fmt.Errorf("built-in %s did not load", f.Name)
		}
		info := builtinInfo{Name: f.Name, DisplayName: base.DisplayName, Domains: domainsOf(base)}
		for i, inc := range f.Includes() {
			p, ok := byName[inc]
			if !ok {
				return nil, fmt.Errorf("built-in %s did not load", inc)
			}
			a := builtinAuth{Include: "builtin:" + inc, Type: p.Upstream.Auth.Type}
			if i > 0 {
				a.Variant = f.Variants[i-1]
			}
			info.Auth = append(info.Auth, a)
			// A variant may replace the patterns; list every kind once.
			for _, pat := range p.Patterns {
				if !slices.Contains(info.Kinds, pat.Name) {
					info.Kinds = append(info.Kinds, pat.Name)
				}
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// domainsOf lists the hosts p's links are on, without "www.".
func domainsOf(p *config.Provider) []string {
	d := strings.ToLower(p.Notion.Domain)
	first := d
	if p.Notion.Subdomains {
		first = "*." + d
	}
	out := []string{first}
	var more []string
	for _, pat := range p.Patterns {
		for _, s := range pat.Samples {
			u, err := url.Parse(s)
			if err != nil {
				continue
			}
			h := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
			if h == "" || h == d || (p.Notion.Subdomains && strings.HasSuffix(h, "."+d)) || slices.Contains(more, h) {
				continue
			}
			more = append(more, h)
		}
	}
	sort.Strings(more)
	return append(out, more...)
}

// writeBuiltinsText prints one row per built-in file.
func writeBuiltinsText(w io.Writer, list []builtinInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INCLUDE\tNAME\tDOMAINS\tAUTH\tURL KINDS")
	for _, b := range list {
		auth := make([]string, len(b.Auth))
		for i, a := range b.Auth {
			auth[i] = a.Type
			if a.Variant != "" {
				auth[i] = fmt.Sprintf("%s (%s)", a.Type, a.Include)
			}
		}
		fmt.Fprintf(tw, "builtin:%s\t%s\t%s\t%s\t%s\n", b.Name, b.DisplayName,
			strings.Join(b.Domains, ", "), strings.Join(auth, "; "), strings.Join(b.Kinds, ", "))
	}
	return tw.Flush()
}

// writeBuiltinsJSON prints the list under "providers", as
// notion-settings does.
func writeBuiltinsJSON(w io.Writer, list []builtinInfo) error {
	b, err := marshalJSON(struct {
		Providers []builtinInfo `json:"providers"`
	}{list}, "  ")
	if err != nil {
		return fmt.Errorf("encode providers: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
