package bolt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// TestOutboxLayout pins the outbox buckets documented in bolt.go and
// outbox.go: key order (provider, uri, connection), escaped parts, the
// fixed-width due time and the record's schema version.
func TestOutboxLayout(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u\x00\x01"}
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k})
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	_, err = s.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: []byte(`{}`), AttrHash: "h", EnqueuedAt: at, NextAt: at})
	require.NoError(t, err)

	got := map[string]map[string]string{}
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketOutbox, bucketOutboxByDue} {
			m := map[string]string{}
			got[string(name)] = m
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}))
	stamp := `"2025-01-02T03:04:05.000000006Z"`
	assert.Equal(t, map[string]map[string]string{
		"outbox": {"p\x00u\x01\x01\x01\x02\x00c": `{"v":1,"seq":1,"body":"e30=","attr_hash":"h","enqueued_at":` + stamp +
			`,"next_at":` + stamp + `}`},
		"outbox_by_due": {"2025-01-02T03:04:05.000000006Z\x00p\x00u\x01\x01\x01\x02\x00c": ""},
	}, got)
}

// TestOutboxCommits: every acknowledged write is exactly one commit, so it
// is on disk when the call returns (bbolt fsyncs each commit; F1), and a
// call that finds nothing to do commits nothing (no fsync for nothing).
func TestOutboxCommits(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k})
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	it := store.OutboxItem{SubscriptionKey: k, Body: []byte(`{}`), AttrHash: "h", EnqueuedAt: at, NextAt: at}

	commits := func(name string, want int, call func() error) {
		t.Helper()
		before := s.txID()
		require.NoError(t, call(), name)
		assert.Equal(t, before+want, s.txID(), name)
	}
	commits("Enqueue", 1, func() error { it.Seq, err = s.Enqueue(ctx, it); return err })
	commits("RescheduleOutbox stale", 0, func() error {
		_, err := s.RescheduleOutbox(ctx, []store.OutboxUpdate{{SubscriptionKey: k, Seq: it.Seq + 1, NextAt: at}})
		return err
	})
	commits("RescheduleOutbox", 1, func() error {
		_, err := s.RescheduleOutbox(ctx, []store.OutboxUpdate{{SubscriptionKey: k, Seq: it.Seq, NextAt: at.Add(time.Second), Attempts: 1}})
		return err
	})
	commits("DeleteOutboxItem stale", 0, func() error { _, err := s.DeleteOutboxItem(ctx, k, it.Seq+1); return err })
	commits("DeleteOutboxByURI none", 0, func() error { _, err := s.DeleteOutboxByURI(ctx, "p", "other"); return err })
	commits("DeleteOutboxByConnection none", 0, func() error { _, err := s.DeleteOutboxByConnection(ctx, "other"); return err })
	commits("AckOutbox", 1, func() error { return s.AckOutbox(ctx, it, at) })
	commits("AckOutbox again", 0, func() error { return s.AckOutbox(ctx, it, at) })
	assert.Zero(t, bucketLen(t, s, bucketOutbox))
	assert.Zero(t, bucketLen(t, s, bucketOutboxByDue))
}

// TestOutboxSurvivesReopen: an acknowledged Enqueue is in the file after
// Close and Open, with its Seq, and Seqs keep growing after the reopen.
func TestOutboxSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k})
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	seq, err := s.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: []byte(`{"a":1}`), AttrHash: "h", EnqueuedAt: at, NextAt: at})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s2, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	due, err := s2.DueOutbox(ctx, at, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, seq, due[0].Seq)
	assert.JSONEq(t, `{"a":1}`, string(due[0].Body))
	seq2, err := s2.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: []byte(`{}`), EnqueuedAt: at, NextAt: at})
	require.NoError(t, err)
	assert.Greater(t, seq2, seq)
}
