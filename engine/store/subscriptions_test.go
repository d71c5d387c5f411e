package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/unfurld/unfurld/engine/store"
)

// TestMergePendingMark: a webhook's pending mark sets only the story, and
// only a refresh that began no earlier than the mark replaces it; one
// that began before may have fetched the object before the announced
// change, so the mark stays and only its validators are taken (issue 4
// item 4, security.md F1).
func TestMergePendingMark(t *testing.T) {
	t0 := time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)
	k := store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: "https://tracker.example.com/items/1"}
	polled := store.Subscription{
		SubscriptionKey: k, AttrHash: "h1", ETag: `"e1"`, CreatedAt: t0, UpdatedAt: t0,
		Refresh: store.RefreshRecord{At: t0, Trigger: "poll", Outcome: "unchanged", Status: 200},
	}
	markAt := t0.Add(time.Minute)
	mark := store.Subscription{SubscriptionKey: k, UpdatedAt: markAt,
		Refresh: store.RefreshRecord{At: markAt, Trigger: "webhook", Outcome: store.RefreshPending}}
	marked := polled
	marked.Refresh = mark.Refresh // UpdatedAt stays: a mark changes nothing of the link yet
	record := func(began time.Time, etag string) store.Subscription {
		return store.Subscription{SubscriptionKey: k, ETag: etag, UpdatedAt: began.Add(time.Second),
			Refresh: store.RefreshRecord{At: began, Trigger: "webhook", Outcome: "changed", Status: 200}}
	}
	withETag := func(s store.Subscription, etag string, at time.Time) store.Subscription {
		s.ETag, s.UpdatedAt = etag, at
		return s
	}
	after := record(markAt, `"e2"`)
	replaced := polled
	replaced.ETag, replaced.Refresh, replaced.UpdatedAt = `"e2"`, after.Refresh, after.UpdatedAt

	tests := []struct {
		name      string
		old       store.Subscription
		ok        bool
		put       store.Subscription
		want      store.Subscription
		wantWrite bool
	}{
		{"mark keeps the validators", polled, true, mark, marked, true},
		{"same mark again", marked, true, mark, marked, false},
		{"mark never creates", store.Subscription{}, false, mark, store.Subscription{}, false},
		{"refresh begun before the mark keeps it", marked, true, record(t0, `"e2"`),
			withETag(marked, `"e2"`, t0.Add(time.Second)), true},
		{"and writes nothing without new validators", marked, true, record(t0, `"e1"`), marked, false},
		{"refresh begun at the mark replaces it", marked, true, after, replaced, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, write := store.MergeSubscription(tc.old, tc.ok, tc.put)
			assert.Equal(t, tc.wantWrite, write)
			assert.Equal(t, tc.want, got)
		})
	}
}
