package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// OutboxStore is a store with its outbox. Once store.Store embeds
// store.Outbox it is the same as store.Store.
type OutboxStore interface {
	store.Store
	store.Outbox
}

// RunOutbox runs the conformance suite of store.Outbox (issue 4 item 4,
// security.md TH-52). Like Run, newStore returns a new, empty store for
// each subtest, which RunOutbox closes when the subtest ends.
func RunOutbox(t *testing.T, newStore func(t *testing.T) OutboxStore) {
	t.Helper()
	runCases(t, newStore, parallel, []suiteCase[OutboxStore]{
		{"EnqueueNeedsSubscription_TH40", testEnqueueNeedsSubscription},
		{"EnqueueCoalesces_TH52", testEnqueueCoalesces},
		{"EnqueueKeepsLaterNextAt_TH52", testEnqueueKeepsLaterNextAt},
		{"EnqueueConcurrent", testEnqueueConcurrent},
		{"DueOrderAndLimit", testDueOrderAndLimit},
		{"Reschedule", testReschedule},
		{"Ack", testAck},
		{"AckAfterNewerState", testAckAfterNewerState},
		{"AckDoesNotResurrect_TH40", testAckDoesNotResurrect},
		{"DeleteOutboxItem", testDeleteOutboxItem},
		{"DeleteOutboxByConnection", testDeleteOutboxByConnection},
		{"DeleteOutboxByURI", testDeleteOutboxByURI},
		{"DeleteConnectionDropsOutbox_TH40", testDeleteConnectionDropsOutbox},
		{"OutboxDepth", testOutboxDepth},
		{"OutboxBytesAreCopied", testOutboxBytesAreCopied},
		{"OutboxCancelledContext", testOutboxCancelledContext},
	})
}

// subscribe creates the connection (if new) and a subscription of uri.
func subscribe(t *testing.T, s OutboxStore, provider, connID, uri string) store.SubscriptionKey {
	t.Helper()
	ctx := t.Context()
	if _, err := s.GetConnection(ctx, connID); err != nil {
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.CreateConnection(ctx, newConn(connID, provider)))
	}
	sub := newSub(provider, connID, uri)
	_, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	return sub.SubscriptionKey
}

// newItem is a fresh state for k, due at at.
func newItem(k store.SubscriptionKey, state string, at time.Time) store.OutboxItem {
	return store.OutboxItem{
		SubscriptionKey: k,
		Body:            fmt.Appendf(nil, `{"uri":%q,"operations":[{"path":["attributes"],"set":[%q]}]}`, k.URI, state),
		AttrHash:        "hash-" + state,
		EnqueuedAt:      at,
		NextAt:          at,
	}
}

func enqueue(t *testing.T, s OutboxStore, it store.OutboxItem) uint64 {
	t.Helper()
	seq, err := s.Enqueue(t.Context(), it)
	require.NoError(t, err)
	require.NotZero(t, seq)
	return seq
}

func normItem(it store.OutboxItem) store.OutboxItem {
	it.Body = normBytes(it.Body)
	it.EnqueuedAt, it.NextAt = normTime(it.EnqueuedAt), normTime(it.NextAt)
	return it
}

func assertItem(t *testing.T, s OutboxStore, want store.OutboxItem) {
	t.Helper()
	got, err := s.GetOutboxItem(t.Context(), want.SubscriptionKey)
	require.NoError(t, err)
	assert.Equal(t, normItem(want), normItem(got))
}

func assertNoItem(t *testing.T, s OutboxStore, k store.SubscriptionKey) {
	t.Helper()
	_, err := s.GetOutboxItem(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func dueKeys(t *testing.T, s OutboxStore, now time.Time, limit int) []store.SubscriptionKey {
	t.Helper()
	items, err := s.DueOutbox(t.Context(), now, limit)
	require.NoError(t, err)
	keys := []store.SubscriptionKey{}
	for _, it := range items {
		keys = append(keys, it.SubscriptionKey)
	}
	return keys
}

// testEnqueueNeedsSubscription: an update for a subscription that does not
// exist (never made, or deleted before the poll finished) is refused, so
// nothing of a deleted grant is written again (TH-40).
func testEnqueueNeedsSubscription(t *testing.T, s OutboxStore) {
	k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: "https://github.com/a"}
	_, err := s.Enqueue(t.Context(), newItem(k, "a", baseTime()))
	require.ErrorIs(t, err, store.ErrNotFound)
	assertNoItem(t, s, k)

	subscribe(t, s, "github", "c1", k.URI)
	require.NoError(t, s.DeleteSubscription(t.Context(), k))
	_, err = s.Enqueue(t.Context(), newItem(k, "a", baseTime()))
	require.ErrorIs(t, err, store.ErrNotFound, "after DeleteSubscription")
	assertNoItem(t, s, k)
}

// testEnqueueCoalesces: three states of one URI leave one item, the latest,
// with a larger Seq each time and the attempt count started afresh
// (TH-52: only the latest state is sent).
func testEnqueueCoalesces(t *testing.T, s OutboxStore) {
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	other := subscribe(t, s, "github", "c1", "https://github.com/b")
	at := baseTime()
	enqueue(t, s, newItem(other, "x", at))

	var last uint64
	for i, state := range []string{"one", "two", "three"} {
		seq := enqueue(t, s, newItem(k, state, at.Add(time.Duration(i)*time.Second)))
		assert.Greater(t, seq, last, "Seq grows")
		last = seq
		if i == 1 {
			n, err := s.RescheduleOutbox(t.Context(), []store.OutboxUpdate{{
				SubscriptionKey: k, Seq: seq, NextAt: at.Add(time.Second), Attempts: 3, LastError: "notion status 502",
			}})
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}
	}
	want := newItem(k, "three", at.Add(2*time.Second))
	want.Seq = last
	assertItem(t, s, want)
	depth, err := s.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"github": 2}, depth)
}

// testEnqueueKeepsLaterNextAt: a new state replacing one that waits out a
// Retry-After keeps the wait; a replaced item due earlier takes the new
// state's time.
func testEnqueueKeepsLaterNextAt(t *testing.T, s OutboxStore) {
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	at := baseTime()
	seq := enqueue(t, s, newItem(k, "one", at))
	_, err := s.RescheduleOutbox(t.Context(), []store.OutboxUpdate{{SubscriptionKey: k, Seq: seq, NextAt: at.Add(7 * time.Second), Attempts: 1}})
	require.NoError(t, err)

	seq = enqueue(t, s, newItem(k, "two", at.Add(time.Second)))
	want := newItem(k, "two", at.Add(time.Second))
	want.Seq, want.NextAt = seq, at.Add(7*time.Second)
	assertItem(t, s, want)
	assert.Empty(t, dueKeys(t, s, at.Add(7*time.Second-time.Nanosecond), 10), "not due before the wait ends")
	assert.Equal(t, []store.SubscriptionKey{k}, dueKeys(t, s, at.Add(7*time.Second), 10))

	seq = enqueue(t, s, newItem(k, "three", at.Add(9*time.Second)))
	want = newItem(k, "three", at.Add(9*time.Second))
	want.Seq = seq
	assertItem(t, s, want)
}

// testEnqueueConcurrent: parallel enqueues of one key leave one item, and
// every caller got its own Seq.
func testEnqueueConcurrent(t *testing.T, s OutboxStore) {
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	const n = 16
	seqs := make(chan uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			seq, err := s.Enqueue(t.Context(), newItem(k, fmt.Sprint(i), baseTime()))
			assert.NoError(t, err)
			seqs <- seq
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	var top uint64
	for seq := range seqs {
		assert.False(t, seen[seq], "Seq %d given twice", seq)
		seen[seq] = true
		top = max(top, seq)
	}
	got, err := s.GetOutboxItem(t.Context(), k)
	require.NoError(t, err)
	assert.Equal(t, top, got.Seq, "the last write wins")
	depth, err := s.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"github": 1}, depth)
}

// testDueOrderAndLimit: due means NextAt <= now; items come by NextAt,
// ties by (provider, uri, connection); limit caps the answer.
func testDueOrderAndLimit(t *testing.T, s OutboxStore) {
	at := baseTime()
	late := subscribe(t, s, "github", "c1", "https://github.com/late")
	tieB := subscribe(t, s, "github", "c2", "https://github.com/tie")
	tieA := subscribe(t, s, "github", "c1", "https://github.com/tie")
	first := subscribe(t, s, "gitlab", "c3", "https://gitlab.com/first")
	future := subscribe(t, s, "github", "c1", "https://github.com/future")
	enqueue(t, s, newItem(late, "x", at.Add(3*time.Second)))
	enqueue(t, s, newItem(tieB, "x", at.Add(time.Second)))
	enqueue(t, s, newItem(tieA, "x", at.Add(time.Second)))
	enqueue(t, s, newItem(first, "x", at))
	enqueue(t, s, newItem(future, "x", at.Add(time.Hour)))

	now := at.Add(3 * time.Second)
	assert.Equal(t, []store.SubscriptionKey{first, tieA, tieB, late}, dueKeys(t, s, now, 10))
	assert.Equal(t, []store.SubscriptionKey{first, tieA}, dueKeys(t, s, now, 2))
	assert.Equal(t, []store.SubscriptionKey{first}, dueKeys(t, s, at, 10), "NextAt == now is due")
	assert.Empty(t, dueKeys(t, s, at.Add(-time.Nanosecond), 10))

	items, err := s.DueOutbox(t.Context(), at, 1)
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, "hash-x", items[0].AttrHash, "items come whole")
	assert.JSONEq(t, `{"uri":"https://gitlab.com/first","operations":[{"path":["attributes"],"set":["x"]}]}`, string(items[0].Body))
}

// testReschedule: an update applies only to the state it names, so an
// attempt on an old state cannot postpone the new one.
func testReschedule(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	other := subscribe(t, s, "github", "c1", "https://github.com/b")
	seq := enqueue(t, s, newItem(k, "one", at))
	otherSeq := enqueue(t, s, newItem(other, "one", at))

	n, err := s.RescheduleOutbox(t.Context(), []store.OutboxUpdate{
		{SubscriptionKey: k, Seq: seq, NextAt: at.Add(4 * time.Second), Attempts: 2, LastError: "notion status 503"},
		{SubscriptionKey: other, Seq: otherSeq + 100, NextAt: at.Add(time.Hour), Attempts: 9},
		{SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: "c9", URI: "x"}, Seq: 1, NextAt: at},
	})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the matching Seq applies")
	want := newItem(k, "one", at)
	want.Seq, want.NextAt, want.Attempts, want.LastError = seq, at.Add(4*time.Second), 2, "notion status 503"
	assertItem(t, s, want)
	assert.Equal(t, []store.SubscriptionKey{other}, dueKeys(t, s, at.Add(3*time.Second), 10))
	assert.Equal(t, []store.SubscriptionKey{other, k}, dueKeys(t, s, at.Add(4*time.Second), 10))

	n, err = s.RescheduleOutbox(t.Context(), nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// testAck: delivery deletes the item and records the sent hash in the
// subscription, keeping its validators and CreatedAt.
func testAck(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	it := newItem(k, "two", at)
	it.Seq = enqueue(t, s, it)

	sentAt := at.Add(time.Minute)
	require.NoError(t, s.AckOutbox(t.Context(), it, sentAt))
	assertNoItem(t, s, k)
	want := newSub("github", "c1", k.URI)
	want.AttrHash, want.UpdatedAt, want.DeliveredAt = "hash-two", sentAt, sentAt
	assertSub(t, s, want)

	require.NoError(t, s.AckOutbox(t.Context(), it, sentAt.Add(time.Minute)), "a second ack is harmless")
	assertSub(t, s, want)
}

// testAckAfterNewerState: when a newer state was enqueued while an older
// one was in flight, the ack records the older hash (that is what Notion
// has) and the newer state stays queued.
func testAckAfterNewerState(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	old := newItem(k, "one", at)
	old.Seq = enqueue(t, s, old)
	newer := newItem(k, "two", at.Add(time.Second))
	newer.Seq = enqueue(t, s, newer)

	require.NoError(t, s.AckOutbox(t.Context(), old, at.Add(2*time.Second)))
	assertItem(t, s, newer)
	sub, err := s.GetSubscription(t.Context(), k)
	require.NoError(t, err)
	assert.Equal(t, "hash-one", sub.AttrHash)
	assert.True(t, sub.DeliveredAt.Equal(at.Add(2*time.Second)), "Notion has the older state since then")

}

// testAckDoesNotResurrect: a subscription deleted while its update was in
// flight stays deleted (TH-40, no PATCH after a deletion).
func testAckDoesNotResurrect(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	it := newItem(k, "one", at)
	it.Seq = enqueue(t, s, it)
	_, err := s.DeleteSubscriptionsByURI(t.Context(), k.Provider, k.URI)
	require.NoError(t, err)

	require.NoError(t, s.AckOutbox(t.Context(), it, at))
	_, err = s.GetSubscription(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
	assertNoItem(t, s, k)
}

// testDeleteOutboxItem: by Seq, or any state with Seq 0.
func testDeleteOutboxItem(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	seq := enqueue(t, s, newItem(k, "one", at))

	ok, err := s.DeleteOutboxItem(t.Context(), k, seq+1)
	require.NoError(t, err)
	assert.False(t, ok, "another state")
	ok, err = s.DeleteOutboxItem(t.Context(), k, seq)
	require.NoError(t, err)
	assert.True(t, ok)
	assertNoItem(t, s, k)
	assert.Empty(t, dueKeys(t, s, at, 10), "the due index forgot it too")

	enqueue(t, s, newItem(k, "two", at))
	ok, err = s.DeleteOutboxItem(t.Context(), k, 0)
	require.NoError(t, err)
	assert.True(t, ok, "Seq 0 deletes any state")
	ok, err = s.DeleteOutboxItem(t.Context(), k, 0)
	require.NoError(t, err)
	assert.False(t, ok, "absent")
}

// testDeleteOutboxByConnection: every item of the connection, whatever the
// provider, and nothing else (disconnect, Notion 401/403, TH-52).
func testDeleteOutboxByConnection(t *testing.T, s OutboxStore) {
	at := baseTime()
	a := subscribe(t, s, "github", "c1", "https://github.com/a")
	b := subscribe(t, s, "github", "c1", "https://github.com/b")
	// An item of c1 under another provider goes too; connections whose
	// IDs share a prefix with c1 stay.
	c := subscribe(t, s, "gitlab", "c1", "https://gitlab.com/a")
	keep := subscribe(t, s, "github", "c", "https://github.com/a")
	keep2 := subscribe(t, s, "github", "c10", "https://github.com/a")
	for _, k := range []store.SubscriptionKey{a, b, c, keep, keep2} {
		enqueue(t, s, newItem(k, "x", at))
	}

	n, err := s.DeleteOutboxByConnection(t.Context(), "c1")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for _, k := range []store.SubscriptionKey{a, b, c} {
		assertNoItem(t, s, k)
	}
	assert.ElementsMatch(t, []store.SubscriptionKey{keep, keep2}, dueKeys(t, s, at, 10))

	n, err = s.DeleteOutboxByConnection(t.Context(), "c1")
	require.NoError(t, err)
	assert.Zero(t, n)
}

// testDeleteOutboxByURI: every connection's item of a provider's URI, not
// a URI it is a prefix of, not another provider's (protocol 5.6).
func testDeleteOutboxByURI(t *testing.T, s OutboxStore) {
	at := baseTime()
	const uri = "https://github.com/a"
	a1 := subscribe(t, s, "github", "c1", uri)
	a2 := subscribe(t, s, "github", "c2", uri)
	longer := subscribe(t, s, "github", "c1", uri+"/b")
	nul := subscribe(t, s, "github", "c1", uri+"\x00b")
	other := subscribe(t, s, "gitlab", "c3", uri)
	for _, k := range []store.SubscriptionKey{a1, a2, longer, nul, other} {
		enqueue(t, s, newItem(k, "x", at))
	}

	n, err := s.DeleteOutboxByURI(t.Context(), "github", uri)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assertNoItem(t, s, a1)
	assertNoItem(t, s, a2)
	assert.ElementsMatch(t, []store.SubscriptionKey{longer, nul, other}, dueKeys(t, s, at, 10))
	got, err := s.GetOutboxItem(t.Context(), nul)
	require.NoError(t, err)
	assert.Equal(t, nul, got.SubscriptionKey, "keys with a 00 byte round-trip")
}

// testOutboxDepth counts per provider.
func testOutboxDepth(t *testing.T, s OutboxStore) {
	depth, err := s.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Empty(t, depth)
	at := baseTime()
	for i := range 3 {
		enqueue(t, s, newItem(subscribe(t, s, "github", "c1", fmt.Sprint("https://github.com/", i)), "x", at))
	}
	enqueue(t, s, newItem(subscribe(t, s, "git\x00lab", "c2", "https://gitlab.com/a"), "x", at))
	depth, err = s.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"github": 3, "git\x00lab": 1}, depth)
}

// testOutboxBytesAreCopied: the caller's Body and the store's stay apart.
func testOutboxBytesAreCopied(t *testing.T, s OutboxStore) {
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	it := newItem(k, "x", baseTime())
	want := newItem(k, "x", baseTime())
	want.Seq = enqueue(t, s, it)
	it.Body[0] = 'X'
	got, err := s.GetOutboxItem(t.Context(), k)
	require.NoError(t, err)
	got.Body[0] = 'Y'
	assertItem(t, s, want)
}

// testOutboxCancelledContext: every method checks its context first and
// changes nothing.
func testOutboxCancelledContext(t *testing.T, s OutboxStore) {
	at := baseTime()
	k := subscribe(t, s, "github", "c1", "https://github.com/a")
	it := newItem(k, "x", at)
	it.Seq = enqueue(t, s, it)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Enqueue", func() error { _, err := s.Enqueue(ctx, newItem(k, "y", at)); return err }},
		{"GetOutboxItem", func() error { _, err := s.GetOutboxItem(ctx, k); return err }},
		{"DueOutbox", func() error { _, err := s.DueOutbox(ctx, at, 10); return err }},
		{"RescheduleOutbox", func() error {
			_, err := s.RescheduleOutbox(ctx, []store.OutboxUpdate{{SubscriptionKey: k, Seq: it.Seq, NextAt: at.Add(time.Hour)}})
			return err
		}},
		{"AckOutbox", func() error { return s.AckOutbox(ctx, it, at) }},
		{"DeleteOutboxItem", func() error { _, err := s.DeleteOutboxItem(ctx, k, 0); return err }},
		{"DeleteOutboxByConnection", func() error { _, err := s.DeleteOutboxByConnection(ctx, "c1"); return err }},
		{"DeleteOutboxByURI", func() error { _, err := s.DeleteOutboxByURI(ctx, k.Provider, k.URI); return err }},
		{"OutboxDepth", func() error { _, err := s.OutboxDepth(ctx); return err }},
	}
	for _, c := range calls {
		require.ErrorIs(t, c.call(), context.Canceled, c.name)
	}
	assertItem(t, s, it)
}

// testDeleteConnectionDropsOutbox: deleting a connection removes its
// queued updates in the same transaction, so nothing of it is sent or
// kept afterwards (TH-40, TH-52 "no PATCH after a deletion").
func testDeleteConnectionDropsOutbox(t *testing.T, s OutboxStore) {
	at := baseTime()
	a := subscribe(t, s, "github", "c1", "https://github.com/a")
	keep := subscribe(t, s, "github", "c2", "https://github.com/a")
	enqueue(t, s, newItem(a, "x", at))
	enqueue(t, s, newItem(keep, "y", at))
	require.NoError(t, s.DeleteConnection(t.Context(), "c1"))
	assertNoItem(t, s, a)
	assert.Equal(t, []store.SubscriptionKey{keep}, dueKeys(t, s, at, 10))
}
