package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// statusLockTimeout is short: a running server holds the store, and then
// the command asks the server instead.
const statusLockTimeout = 500 * time.Millisecond

// statusCmd prints the live-update status (issue 4 item 5): per provider,
// subscriptions, queue depth, the last refresh and failures, and with
// --uri or --connection the story of one link or connection. It reads the
// store; when a running server holds it, it asks the server's
// /admin/status with server.admin_token instead, which adds the in-memory
// delivery and polling statistics.
func statusCmd(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("status", e)
	cfgPath := configFlag(fs, e)
	q := status.Query{}
	fs.StringVar(&q.Provider, "provider", "", "only this provider")
	fs.StringVar(&q.URI, "uri", "", "the story of one link")
	fs.StringVar(&q.Connection, "connection", "", "the story of one connection")
	format := fs.String("format", "text", "text or json")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(e.stderr, "unfurld status: --format must be text or json\n")
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	var names []string
	for _, p := range l.reg.All() {
		names = append(names, p.Name)
	}
	if q.Provider != "" {
		if _, ok := l.reg.Get(q.Provider); !ok {
			fmt.Fprintf(e.stderr, "unfurld status: no provider %q in %s (have %s)\n", q.Provider, *cfgPath, strings.Join(names, ", "))
			return exitUsage
		}
	}
	if _, err := l.cfg.FillDevSecrets(filepath.Dir(l.cfg.Storage.Path)); err != nil {
		fmt.Fprintf(e.stderr, "unfurld status: %v\n", err)
		return exitFailure
	}

	var r *status.Report
	st, err := openStore(ctx, l.cfg.Storage, bolt.Options{LockTimeout: statusLockTimeout})
	switch {
	case err == nil:
		r, err = status.Build(ctx, st, names, q, nil, time.Now())
		var kr *oauth.Keyring
		if err == nil {
			kr, err = oauth.ParseKeyring(l.cfg.Server.SecretKeys.Reveal())
		}
		if err == nil {
			err = r.AddSealingKeys(ctx, st, kr, time.Now())
		}
		_ = st.Close()
	case errors.Is(err, bolt.ErrLocked):
		if l.cfg.Server.AdminToken.IsZero() {
			fmt.Fprintf(e.stderr, "unfurld status: the store is held by a running unfurld; set server.admin_token and this command asks the server instead\n")
			return exitFailure
		}
		addr := l.cfg.Server.Listen
		if l.cfg.Server.AdminListen != "" {
			addr = l.cfg.Server.AdminListen // /admin/status lives there
		}
		r, err = askServer(ctx, addr, l.cfg.Server.AdminToken.Reveal(), q)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld status: %v\n", err)
		return exitFailure
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return exitOK
	}
	printStatus(e.stdout, r)
	printSealingKeys(e.stdout, r.SealingKeys)
	return exitOK
}

// askServer queries the running server on its listen address (loopback
// when it listens on every interface).
func askServer(ctx context.Context, listen, token string, q status.Query) (*status.Report, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("server.listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	v := url.Values{}
	for k, val := range map[string]string{"provider": q.Provider, "uri": q.URI, "connection": q.Connection} {
		if val != "" {
			v.Set(k, val)
		}
	}
	u := "http://" + net.JoinHostPort(host, port) + "/admin/status?" + v.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the running server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	var r status.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	return &r, nil
}

func printStatus(w io.Writer, r *status.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tCONNECTIONS\tRECONNECT\tSUBSCRIPTIONS\tQUEUED\tLAST REFRESH\tREFRESH FAILURES")
	for _, p := range r.Providers {
		last := "never"
		if !p.LastRefreshAt.IsZero() {
			last = p.LastRefreshAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\n", p.Name, p.Connections, p.ReconnectRequired, p.Subscriptions, p.QueueDepth, last, p.RefreshFailures)
	}
	_ = tw.Flush()
	for _, p := range r.Providers {
		if p.Delivery != nil || p.Polling != nil {
			b, _ := json.Marshal(map[string]any{"delivery": p.Delivery, "polling": p.Polling})
			fmt.Fprintf(w, "%s live: %s\n", p.Name, b)
		}
		if p.Canary != nil {
			b, _ := json.Marshal(p.Canary)
			fmt.Fprintf(w, "%s last canary run: %s\n", p.Name, b)
		}
		if len(p.Outcomes) > 0 {
			keys := make([]string, 0, len(p.Outcomes))
			for k := range p.Outcomes {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s=%d", k, p.Outcomes[k])
			}
			fmt.Fprintf(w, "%s last refresh outcomes: %s\n", p.Name, strings.Join(parts, " "))
		}
	}
	if r.Story == nil {
		return
	}
	fmt.Fprintln(w)
	if c := r.Story.Connection; c != nil {
		fmt.Fprintf(w, "connection %s (%s): %s, account %q, workspace %q, updated %s\n",
			c.ID, c.Provider, c.Status, c.AccountName, c.WorkspaceName, c.UpdatedAt.UTC().Format(time.RFC3339))
	}
	if len(r.Story.Subscriptions) == 0 {
		fmt.Fprintln(w, "no subscriptions match")
	}
	for _, s := range r.Story.Subscriptions {
		fmt.Fprintf(w, "%s  [%s, connection %s]\n", s.URI, s.Provider, s.ConnectionID)
		fmt.Fprintf(w, "  subscribed %s, last sent %s (attributes %s)\n", s.CreatedAt.UTC().Format(time.RFC3339), s.UpdatedAt.UTC().Format(time.RFC3339), s.AttrHash)
		if rr := s.LastRefresh; !rr.At.IsZero() {
			fmt.Fprintf(w, "  last refresh %s by %s: %s", rr.At.UTC().Format(time.RFC3339), rr.Trigger, rr.Outcome)
			if rr.Status != 0 {
				fmt.Fprintf(w, " (status %d)", rr.Status)
			}
			if rr.Detail != "" {
				fmt.Fprintf(w, ": %s", rr.Detail)
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintln(w, "  not refreshed yet")
		}
		if s.ETag != "" || s.LastModified != "" {
			fmt.Fprintf(w, "  validators: etag %q, last-modified %q\n", s.ETag, s.LastModified)
		}
		if qd := s.Queued; qd != nil {
			fmt.Fprintf(w, "  queued for Notion since %s, next attempt %s, %d failed attempts", qd.EnqueuedAt.UTC().Format(time.RFC3339), qd.NextAt.UTC().Format(time.RFC3339), qd.Attempts)
			if qd.LastError != "" {
				fmt.Fprintf(w, ", last error: %s", qd.LastError)
			}
			fmt.Fprintln(w)
		}
	}
}
