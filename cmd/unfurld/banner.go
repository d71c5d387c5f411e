package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
)

// printNextSteps ends the start banner with what to do next. Notion
// calls the server from the internet, so a public_url on this machine or
// a private network cannot work with Notion yet, and the first useful
// step is the dry run of a sample link, which needs no Notion at all.
func printNextSteps(w io.Writer, cfg *config.Config, cfgPath, addr string) {
	if u, err := url.Parse(cfg.Server.PublicURL); err == nil && !reachableByNotion(u.Hostname()) {
		fmt.Fprintf(w, "Notion cannot reach %s: it calls public_url from the internet, and that address is on this machine or a private network.\n", cfg.Server.PublicURL)
		fmt.Fprintln(w, "To connect Notion, expose this server (a tunnel or a deployment) and set server.public_url to its https address.")
	}
	if sample := firstSample(cfg); sample != "" {
		fmt.Fprintln(w, "Next: try a link without Notion, and see each step:")
		fmt.Fprintf(w, "  unfurld preview --config %s --trace %s\n", shellQuote(cfgPath), shellQuote(sample))
	}
	if cfg.Server.Mode == config.ModeDevelopment || cfg.Server.Lab.Enabled {
		fmt.Fprintf(w, "Or in a browser, with the preview as Notion draws it: %s/lab\n", localBase(addr))
	}
	fmt.Fprintf(w, "This server's page: %s/   Documentation: %s\n\n", localBase(addr), server.DocsURL)
}

// reachableByNotion reports whether host could be reached from the
// internet: not loopback, not a private, link-local or unspecified
// address, and not a name reserved for local use. Public names are
// assumed reachable; nothing is resolved.
func reachableByNotion(host string) bool {
	if config.LoopbackHost(host) {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return !(ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, suffix := range []string{".localhost", ".local", ".internal", ".lan", ".home.arpa"} {
		if strings.HasSuffix(h, suffix) {
			return false
		}
	}
	return h != ""
}

// firstSample is the first sample link of the first provider that has
// one.
func firstSample(cfg *config.Config) string {
	for _, p := range cfg.Providers {
		for _, pat := range p.Patterns {
			if len(pat.Samples) > 0 {
				return pat.Samples[0]
			}
		}
	}
	return ""
}

// localBase is a URL of the listener a browser on this machine can open:
// every-interface addresses become loopback.
func localBase(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and ./_-: so the printed command can be pasted.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./_-:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
