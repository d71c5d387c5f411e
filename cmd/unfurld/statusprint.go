package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfurld/unfurld/engine/status"
)

// printStatus prints a report for people: one aligned table of
// providers, then the story of a link or connection as aligned
// label/value lines. Times read as a UTC date and how long ago (or how
// soon) relative to when the report was made.
func printStatus(w io.Writer, r *status.Report) {
	now := r.GeneratedAt
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tCONNECTIONS\tRECONNECT\tSUBSCRIPTIONS\tQUEUED\tLAST REFRESH\tREFRESH FAILURES")
	for _, p := range r.Providers {
		last := "never"
		if !p.LastRefreshAt.IsZero() {
			last = ago(p.LastRefreshAt, now)
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
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(p.Outcomes)) {
				parts = append(parts, fmt.Sprintf("%s=%d", k, p.Outcomes[k]))
			}
			fmt.Fprintf(w, "%s last refresh outcomes: %s\n", p.Name, strings.Join(parts, " "))
		}
	}
	if r.Story == nil {
		return
	}
	if c := r.Story.Connection; c != nil {
		fmt.Fprintln(w)
		printConnection(w, c, now)
	}
	fmt.Fprintln(w)
	if len(r.Story.Subscriptions) == 0 {
		fmt.Fprintln(w, "no subscriptions match")
	}
	for _, s := range r.Story.Subscriptions {
		printSubscription(w, s, now)
	}
}

func printConnection(w io.Writer, c *status.ConnectionView, now time.Time) {
	fmt.Fprintf(w, "connection %s (%s)\n", c.ID, c.Provider)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("status", "%s", c.Status)
	account := strconv.Quote(c.AccountName)
	if c.WorkspaceName != "" {
		account += ", workspace " + strconv.Quote(c.WorkspaceName)
	}
	row("account", "%s", account)
	row("connected", "%s", when(c.CreatedAt, now))
	if c.Reconnect != nil {
		row("needs reconnect", "%s", event(*c.Reconnect, now))
	}
	if c.Notion.PushToken {
		row("notion token", "stored (updates to previews are pushed)")
	} else {
		row("notion token", "none: a development connection, nothing is pushed to Notion")
	}
	if len(c.Notion.Tokens) == 0 {
		row("our tokens", "none live: Notion must connect again")
	}
	for _, t := range c.Notion.Tokens {
		v := "issued " + when(t.CreatedAt, now) + ", "
		switch {
		case t.ExpiresAt.IsZero():
			v += "never expires"
		case t.Expired:
			v += "expired " + when(t.ExpiresAt, now)
		default:
			v += "expires " + when(t.ExpiresAt, now)
		}
		row("our "+t.Kind+" token", "%s", v)
	}
	up := c.Upstream
	cred := up.Kind
	switch {
	case up.Kind == "none" && !up.Stored:
		cred += ": the provider's shared credential or a public API"
	case !up.Stored:
		cred += ", none stored"
	default:
		cred += ", stored sealed"
	}
	row("upstream credential", "%s", cred)
	if !up.ExpiresAt.IsZero() {
		verb := "expires"
		if up.Expired {
			verb = "expired"
		}
		row("  "+verb, "%s", when(up.ExpiresAt, now))
	}
	if !up.RefreshedAt.IsZero() {
		row("  last refreshed", "%s", when(up.RefreshedAt, now))
	}
	if len(c.Failures) == 0 {
		row("last failures", "none on record")
	}
	_ = tw.Flush()
	if len(c.Failures) > 0 {
		fmt.Fprintln(w, "  last failures, newest first:")
		ft := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range c.Failures {
			st := "-"
			if f.Status != 0 {
				st = strconv.Itoa(f.Status)
			}
			fmt.Fprintf(ft, "    %s\t%s\t%s\t%s\t%s\n", ago(f.At, now), f.Call, st, f.URI, f.Detail)
		}
		_ = ft.Flush()
	}
}

func printSubscription(w io.Writer, s status.SubscriptionView, now time.Time) {
	fmt.Fprintf(w, "%s  [%s, connection %s]\n", s.URI, s.Provider, s.ConnectionID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("subscribed", "%s", when(s.CreatedAt, now))
	row("last sent", "%s (attributes %s)", when(s.UpdatedAt, now), s.AttrHash)
	if rr := s.LastRefresh; !rr.At.IsZero() {
		v := fmt.Sprintf("%s by %s: %s", when(rr.At, now), rr.Trigger, rr.Outcome)
		if rr.Status != 0 {
			v += fmt.Sprintf(" (status %d)", rr.Status)
		}
		if rr.Detail != "" {
			v += ": " + rr.Detail
		}
		row("last refresh", "%s", v)
	} else {
		row("last refresh", "not refreshed yet")
	}
	if s.ETag != "" || s.LastModified != "" {
		row("validators", "etag %q, last-modified %q", s.ETag, s.LastModified)
	}
	if qd := s.Queued; qd != nil {
		v := fmt.Sprintf("since %s, next attempt %s, %d failed attempts", when(qd.EnqueuedAt, now), when(qd.NextAt, now), qd.Attempts)
		if qd.LastError != "" {
			v += ", last error: " + qd.LastError
		}
		row("queued for Notion", "%s", v)
	}
	// The last PATCH's result: accepted, or refused and given up on,
	// whichever is newer.
	f := s.LastPushFailure
	switch {
	case f != nil && f.At.After(s.DeliveredAt):
		row("last push", "refused %s", event(*f, now))
	case !s.DeliveredAt.IsZero():
		row("last push", "accepted by Notion %s", when(s.DeliveredAt, now))
	default:
		row("last push", "none yet")
	}
	_ = tw.Flush()
}

// event is one line for a ConnectionEvent.
func event(e status.EventView, now time.Time) string {
	s := when(e.At, now) + ": " + e.Call
	if e.Status != 0 {
		s += fmt.Sprintf(" answered %d", e.Status)
	}
	if e.URI != "" {
		s += " for " + e.URI
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// when prints t as a UTC time and its distance from now.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(t, now) + ")"
}

// ago prints how long before now t was ("3m ago"), or after ("in 3m").
func ago(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + span(-d)
	}
	return span(d) + " ago"
}

// span prints a duration at the precision a person needs: seconds under
// a minute, minutes under an hour, hours and minutes under two days,
// then days and hours.
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return strconv.Itoa(h) + "h"
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return strconv.Itoa(days) + "d"
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}
