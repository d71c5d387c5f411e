// Package status builds the operator's view of live updates (issue 4 item
// 5): per provider, connections, subscriptions, queue depth, the last
// refresh and push and the failures; and for one URI or connection the
// full story of its last refresh. `unfurld status` builds it from the
// store alone; the admin endpoint adds the running process's in-memory
// statistics. Nothing in a report is a secret: tokens and sealed
// credentials are never read.
package status

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// Provider names a configured provider and how it authenticates to its
// upstream (config.AuthNone, AuthAPIKey, AuthOAuth2), which names the
// kind of credential its connections hold.
type Provider struct {
	Name string
	Auth string
}

// Query narrows a report. Empty fields mean "everything".
type Query struct {
	// Provider limits the report to one provider.
	Provider string
	// URI and Connection ask for the story of one link or one connection.
	URI        string
	Connection string
}

// Report is the whole answer, encoded as JSON by the admin endpoint and
// printed by `unfurld status`.
type Report struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Providers   []ProviderReport `json:"providers"`
	// Story is set when the query names a URI or a connection.
	Story *Story `json:"story,omitempty"`
	// SealingKeys counts the records each key id seals (keys.go).
	SealingKeys []sealing.KeyUsage `json:"sealing_keys,omitempty"`
}

// ProviderReport summarises one provider.
type ProviderReport struct {
	Name              string `json:"name"`
	Connections       int    `json:"connections"`
	ReconnectRequired int    `json:"reconnect_required"`
	Subscriptions     int    `json:"subscriptions"`
	QueueDepth        int    `json:"queue_depth"`
	// LastRefreshAt is the newest refresh of any subscription.
	LastRefreshAt time.Time `json:"last_refresh_at,omitzero"`
	// RefreshFailures counts subscriptions whose last refresh failed.
	RefreshFailures int `json:"refresh_failures"`
	// Outcomes counts subscriptions by the outcome of their last refresh.
	Outcomes map[string]int `json:"outcomes,omitempty"`
	// Delivery and Polling are the running process's statistics; absent
	// when the report is built from the store alone.
	Delivery any `json:"delivery,omitempty"`
	Polling  any `json:"polling,omitempty"`
	// Canary is the last scheduled canary run (engine/canary Summary);
	// absent when canaries are not scheduled for the provider or the
	// report is built from the store alone.
	Canary any `json:"canary,omitempty"`
}

// Story is everything known about one URI or connection.
type Story struct {
	Connection    *ConnectionView    `json:"connection,omitempty"`
	Subscriptions []SubscriptionView `json:"subscriptions"`
}

// ConnectionView is a connection without its sealed fields: what it
// holds and why it fails, never a token or credential value.
type ConnectionView struct {
	ID            string    `json:"id"`
	Provider      string    `json:"provider"`
	AccountName   string    `json:"account_name"`
	WorkspaceName string    `json:"workspace_name,omitempty"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// Notion is what this connection holds of Notion's and what Notion
	// holds of ours.
	Notion NotionView `json:"notion"`
	// Upstream is the state of the user's upstream credential.
	Upstream CredentialView `json:"upstream_credential"`
	// Reconnect says why the connection needs reconnecting; absent
	// while it is active or when the reason was not kept.
	Reconnect *EventView `json:"reconnect,omitempty"`
	// Failures are the last failed unfurls and pushes, newest first.
	Failures []EventView `json:"failures"`
}

// NotionView describes the Notion side of a connection.
type NotionView struct {
	// PushToken is true when the connection holds Notion's own access
	// token (from Notion's OAuth flow), which updates previews; a
	// development connection made by `unfurld token` has none.
	PushToken bool `json:"push_token"`
	// Tokens are the live tokens we issued to Notion for this
	// connection: kind (access, refresh, code) and times.
	Tokens []TokenView `json:"tokens"`
}

// TokenView is one token we issued, by kind and times; never its value
// or digest.
type TokenView struct {
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired"`
}

// CredentialView is the state of an upstream credential, never its
// value.
type CredentialView struct {
	// Kind is "oauth2", "api_key" or "none" (the provider's shared
	// credential, or a public API), from the provider's configuration.
	Kind string `json:"kind"`
	// Stored is true when the connection holds a sealed credential.
	Stored bool `json:"stored"`
	// ExpiresAt is when the upstream access token expires; zero when it
	// does not.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired"`
	// RefreshedAt is the last renewal with the refresh token.
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
}

// EventView is a store.ConnectionEvent with JSON names.
type EventView struct {
	At     time.Time `json:"at"`
	Call   string    `json:"call"`
	URI    string    `json:"uri,omitempty"`
	Status int       `json:"status,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

func eventView(e store.ConnectionEvent) EventView {
	return EventView{At: e.At, Call: e.Call, URI: e.URI, Status: e.Status, Detail: e.Detail}
}

// SubscriptionView is one subscription with its last refresh and its
// queued update, if any.
type SubscriptionView struct {
	Provider     string              `json:"provider"`
	ConnectionID string              `json:"connection_id"`
	URI          string              `json:"uri"`
	AttrHash     string              `json:"attr_hash"`
	ETag         string              `json:"etag,omitempty"`
	LastModified string              `json:"last_modified,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	UpdatedAt    time.Time           `json:"updated_at"`
	LastRefresh  store.RefreshRecord `json:"last_refresh"`
	Queued       *QueuedView         `json:"queued,omitempty"`
	// DeliveredAt is when Notion last accepted a PATCH of this link;
	// zero when none was sent yet.
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	// LastPushFailure is the newest PATCH of this link that Notion
	// refused and that was given up on, from the connection's record;
	// absent when none is on record. A queued update shows its own
	// attempts and last error in Queued.
	LastPushFailure *EventView `json:"last_push_failure,omitempty"`
}

// QueuedView is an update waiting for Notion.
type QueuedView struct {
	EnqueuedAt time.Time `json:"enqueued_at"`
	NextAt     time.Time `json:"next_at"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
}

// Live is the running process's in-memory statistics per provider.
type Live struct {
	Delivery map[string]any
	Polling  map[string]any
	// Canary holds the scheduled canaries' last run per provider.
	Canary map[string]any
}

// Build reads the store and assembles a report for the providers named
// (all configured providers, in order) and the query.
func Build(ctx context.Context, st store.Store, providers []Provider, q Query, live *Live, now time.Time) (*Report, error) {
	r := &Report{GeneratedAt: now.UTC()}
	depth, err := st.OutboxDepth(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	for _, p := range providers {
		name := p.Name
		if q.Provider != "" && q.Provider != name {
			continue
		}
		pr := ProviderReport{Name: name, QueueDepth: depth[name], Outcomes: map[string]int{}}
		conns, err := st.ListConnections(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("connections of %s: %w", name, err)
		}
		pr.Connections = len(conns)
		for _, c := range conns {
			if c.Status == store.StatusReconnect {
				pr.ReconnectRequired++
			}
		}
		err = st.ListSubscriptions(ctx, name, func(s store.Subscription) error {
			pr.Subscriptions++
			if s.Refresh.Outcome != "" {
				pr.Outcomes[s.Refresh.Outcome]++
			}
			if s.Refresh.Outcome == "error" {
				pr.RefreshFailures++
			}
			if s.Refresh.At.After(pr.LastRefreshAt) {
				pr.LastRefreshAt = s.Refresh.At
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("subscriptions of %s: %w", name, err)
		}
		if live != nil {
			pr.Delivery, pr.Polling, pr.Canary = live.Delivery[name], live.Polling[name], live.Canary[name]
		}
		r.Providers = append(r.Providers, pr)
	}
	if q.URI != "" || q.Connection != "" {
		if r.Story, err = story(ctx, st, providers, q, now); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// story collects the subscriptions of one URI or connection, with the
// connection's state when one is named.
func story(ctx context.Context, st store.Store, providers []Provider, q Query, now time.Time) (*Story, error) {
	s := &Story{Subscriptions: []SubscriptionView{}}
	auth := map[string]string{}
	for _, p := range providers {
		auth[p.Name] = p.Auth
	}
	if q.Connection != "" {
		c, err := st.GetConnection(ctx, q.Connection)
		switch {
		case err == nil:
			if s.Connection, err = connectionView(ctx, st, c, auth[c.Provider], now); err != nil {
				return nil, err
			}
		case !isNotFound(err):
			return nil, fmt.Errorf("connection: %w", err)
		}
	}
	// The connections of the subscriptions, for their push failures;
	// a URI's story reads each once.
	conns := map[string]*store.Connection{}
	connOf := func(id string) (*store.Connection, error) {
		if c, ok := conns[id]; ok {
			return c, nil
		}
		c, err := st.GetConnection(ctx, id)
		switch {
		case err == nil:
			conns[id] = &c
		case isNotFound(err):
			conns[id] = nil
		default:
			return nil, fmt.Errorf("connection: %w", err)
		}
		return conns[id], nil
	}
	for _, p := range providers {
		if q.Provider != "" && q.Provider != p.Name {
			continue
		}
		err := st.ListSubscriptions(ctx, p.Name, func(sub store.Subscription) error {
			if (q.URI != "" && sub.URI != q.URI) || (q.Connection != "" && sub.ConnectionID != q.Connection) {
				return nil
			}
			v := SubscriptionView{
				Provider: sub.Provider, ConnectionID: sub.ConnectionID, URI: sub.URI,
				AttrHash: sub.AttrHash, ETag: sub.ETag, LastModified: sub.LastModified,
				CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt, LastRefresh: sub.Refresh,
				DeliveredAt: sub.DeliveredAt,
			}
			it, err := st.GetOutboxItem(ctx, sub.SubscriptionKey)
			switch {
			case err == nil:
				v.Queued = &QueuedView{EnqueuedAt: it.EnqueuedAt, NextAt: it.NextAt, Attempts: it.Attempts, LastError: it.LastError}
			case !isNotFound(err):
				return fmt.Errorf("queued update: %w", err)
			}
			c, err := connOf(sub.ConnectionID)
			if err != nil {
				return err
			}
			if c != nil {
				for i := len(c.Failures) - 1; i >= 0; i-- {
					if f := c.Failures[i]; f.Call == pushCall && f.URI == sub.URI {
						ev := eventView(f)
						v.LastPushFailure = &ev
						break
					}
				}
			}
			s.Subscriptions = append(s.Subscriptions, v)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(s.Subscriptions, func(i, j int) bool { return s.Subscriptions[i].URI < s.Subscriptions[j].URI })
	return s, nil
}

// pushCall is the ConnectionEvent.Call of a PATCH to Notion (engine/live).
const pushCall = "notion push"

// connectionView describes c for the operator: kinds, times and reasons,
// never a token, digest or credential value.
func connectionView(ctx context.Context, st store.Store, c store.Connection, auth string, now time.Time) (*ConnectionView, error) {
	v := &ConnectionView{
		ID: c.ID, Provider: c.Provider, AccountName: c.AccountName, WorkspaceName: c.WorkspaceName,
		Status: c.Status, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Notion: NotionView{PushToken: len(c.NotionToken) > 0, Tokens: []TokenView{}},
		Upstream: CredentialView{
			Kind: auth, Stored: len(c.UpstreamCredential) > 0,
			ExpiresAt: c.UpstreamExpiry, RefreshedAt: c.UpstreamRefreshedAt,
			Expired: !c.UpstreamExpiry.IsZero() && !now.Before(c.UpstreamExpiry),
		},
		Failures: []EventView{},
	}
	if v.Upstream.Kind == "" {
		v.Upstream.Kind = "unknown"
	}
	if c.Status == store.StatusReconnect && !c.Reconnect.At.IsZero() {
		ev := eventView(c.Reconnect)
		v.Reconnect = &ev
	}
	for i := len(c.Failures) - 1; i >= 0; i-- {
		v.Failures = append(v.Failures, eventView(c.Failures[i]))
	}
	toks, err := st.ListConnectionTokens(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("tokens of connection: %w", err)
	}
	for _, t := range toks {
		if !t.ConsumedAt.IsZero() {
			// A redeemed code or rotated refresh token, kept only to
			// recognise a replay: Notion no longer holds it.
			continue
		}
		v.Notion.Tokens = append(v.Notion.Tokens, TokenView{
			Kind: string(t.Kind), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Expired: t.Expired(now),
		})
	}
	// Access before refresh, then by age: the order a reader expects.
	sort.SliceStable(v.Notion.Tokens, func(i, j int) bool {
		a, b := v.Notion.Tokens[i], v.Notion.Tokens[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.CreatedAt.Before(b.CreatedAt)
	})
	return v, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
