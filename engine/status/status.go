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

	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/store"
)

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
	SealingKeys []oauth.KeyUsage `json:"sealing_keys,omitempty"`
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

// ConnectionView is a connection without its sealed fields.
type ConnectionView struct {
	ID            string    `json:"id"`
	Provider      string    `json:"provider"`
	AccountName   string    `json:"account_name"`
	WorkspaceName string    `json:"workspace_name,omitempty"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
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
func Build(ctx context.Context, st store.Store, providers []string, q Query, live *Live, now time.Time) (*Report, error) {
	r := &Report{GeneratedAt: now.UTC()}
	depth, err := st.OutboxDepth(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	for _, name := range providers {
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
		if r.Story, err = story(ctx, st, providers, q); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// story collects the subscriptions of one URI or connection.
func story(ctx context.Context, st store.Store, providers []string, q Query) (*Story, error) {
	s := &Story{Subscriptions: []SubscriptionView{}}
	if q.Connection != "" {
		c, err := st.GetConnection(ctx, q.Connection)
		switch {
		case err == nil:
			s.Connection = &ConnectionView{
				ID: c.ID, Provider: c.Provider, AccountName: c.AccountName, WorkspaceName: c.WorkspaceName,
				Status: c.Status, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
			}
		case !isNotFound(err):
			return nil, fmt.Errorf("connection: %w", err)
		}
	}
	for _, name := range providers {
		if q.Provider != "" && q.Provider != name {
			continue
		}
		err := st.ListSubscriptions(ctx, name, func(sub store.Subscription) error {
			if (q.URI != "" && sub.URI != q.URI) || (q.Connection != "" && sub.ConnectionID != q.Connection) {
				return nil
			}
			v := SubscriptionView{
				Provider: sub.Provider, ConnectionID: sub.ConnectionID, URI: sub.URI,
				AttrHash: sub.AttrHash, ETag: sub.ETag, LastModified: sub.LastModified,
				CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt, LastRefresh: sub.Refresh,
			}
			it, err := st.GetOutboxItem(ctx, sub.SubscriptionKey)
			switch {
			case err == nil:
				v.Queued = &QueuedView{EnqueuedAt: it.EnqueuedAt, NextAt: it.NextAt, Attempts: it.Attempts, LastError: it.LastError}
			case !isNotFound(err):
				return fmt.Errorf("queued update: %w", err)
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

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
