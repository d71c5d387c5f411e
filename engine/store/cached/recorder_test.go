package cached

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// TestRecordIsDurableOnReturn_F1: RecordSubscription returns only after
// the commit holding its record has returned, and the record is then in
// the store; while the commit is held, nobody waiting on it returns.
func TestRecordIsDurableOnReturn_F1(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	g := f.inner.holdPut()
	first := f.recordAsync(ctx, sub("c1", "first", "h"))
	<-g.entered
	assert.False(t, returned(first), "returned while its commit was held")
	_, ok := f.stored(t, "c1", "first")
	assert.False(t, ok)
	g.release()
	require.NoError(t, <-first)
	_, ok = f.stored(t, "c1", "first")
	assert.True(t, ok, "stored when the call returned")
}

// TestGroupCommit: N records that arrive while a commit runs share the
// next one, which starts as soon as the first returns; each caller
// returns after the commit that holds its record, with its record
// stored.
func TestGroupCommit(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const n = 100
	g := f.inner.holdPut()
	first := f.recordAsync(ctx, sub("c1", "first", "h"))
	<-g.entered
	waits := make([]chan error, n)
	for i := range waits {
		waits[i] = f.recordAsync(ctx, sub("c1", "u"+strconv.Itoa(i), "h"))
	}
	f.queued(t, n)
	for i, w := range waits {
		assert.False(t, returned(w), "record %d returned before any commit of it", i)
	}
	g.release()
	require.NoError(t, <-first)
	for i, w := range waits {
		require.NoError(t, <-w, "record %d", i)
		_, ok := f.stored(t, "c1", "u"+strconv.Itoa(i))
		assert.True(t, ok, "record %d stored when its call returned", i)
	}
	assert.Equal(t, []int{1, n}, f.inner.commits(), "one commit for everything that gathered")
}

// TestGroupCommitPaced: a record that finds no commit running is
// committed at once, and so is a batch behind a commit of one record
// (light load); a batch behind a shared commit (load) waits until
// commitPace after that commit started, and not at all when the commit
// itself took that long. Records stay durable on return either way (F1).
func TestGroupCommitPaced(t *testing.T) {
	clk := clocktest.NewStepping(time.Time{})
	f := &fixture{inner: &gateStore{Store: memory.New()}, clk: clk}
	require.NoError(t, f.inner.CreateConnection(t.Context(), store.Connection{ID: "c1", Provider: "tracker", AccountKey: "k-c1", Status: store.StatusActive}))
	f.st = New(f.inner, Options{Now: clk.Now, After: clk.After})
	t.Cleanup(func() { require.NoError(t, f.st.Close()) })
	ctx := t.Context()

	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "alone", "h")))
	assert.Empty(t, clk.Waits(), "an idle recorder commits at once")

	// burst holds a commit of one record, gathers n records behind it
	// and holds their commit too, gathers m more behind that, moves the
	// clock by took and lets both go.
	burst := func(prefix string, n, m int, took time.Duration) {
		var waits []chan error
		record := func(k int) {
			for range k {
				waits = append(waits, f.recordAsync(ctx, sub("c1", prefix+strconv.Itoa(len(waits)), "h")))
			}
		}
		g := f.inner.holdPut()
		record(1)
		<-g.entered
		record(n)
		f.queued(t, n)
		g2 := f.inner.holdPut()
		g.release()
		<-g2.entered
		record(m)
		f.queued(t, m)
		clk.Advance(took)
		g2.release()
		for i, w := range waits {
			require.NoError(t, <-w)
			_, ok := f.stored(t, "c1", prefix+strconv.Itoa(i))
			assert.True(t, ok, "record %d stored when its call returned", i)
		}
	}
	burst("a", 5, 3, 0)
	assert.Equal(t, []time.Duration{commitPace}, clk.Waits(), "only the batch behind the shared commit waits out the pace")
	burst("b", 5, 3, commitPace)
	assert.Len(t, clk.Waits(), 1, "a shared commit that took the pace is not followed by a wait")
	assert.Equal(t, []int{1, 1, 5, 3, 1, 5, 3}, f.inner.commits())
}

// TestGroupCommitConcurrent: many callers at once cost far fewer commits
// than records, and every record is stored when its caller returns.
func TestGroupCommitConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const n = 200
	waits := make([]chan error, n)
	for i := range waits {
		waits[i] = f.recordAsync(ctx, sub("c2", "u"+strconv.Itoa(i), "h"))
	}
	for i, w := range waits {
		require.NoError(t, <-w)
		_, ok := f.stored(t, "c2", "u"+strconv.Itoa(i))
		require.True(t, ok, "record %d", i)
	}
	total := 0
	for _, c := range f.inner.commits() {
		total += c
	}
	assert.Equal(t, n, total, "every record committed once")
	t.Logf("%d records in %d commits", n, len(f.inner.commits()))
}

// TestWarmRecordWritesNothing: a subscription already stored with the
// same hash costs no commit and does not wait for one in flight; a new
// hash is written; after knownSubTTL the store is asked again.
func TestWarmRecordWritesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h1")))
	require.Equal(t, []int{1}, f.inner.commits())

	g := f.inner.holdPut()
	other := f.recordAsync(ctx, sub("c1", "other", "h"))
	<-g.entered
	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h1")), "answered while another commit is held")
	g.release()
	require.NoError(t, <-other)
	assert.Equal(t, []int{1, 1}, f.inner.commits(), "the warm record wrote nothing")

	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h2")))
	hash, _ := f.stored(t, "c1", "u1")
	assert.Equal(t, "h2", hash)

	f.advance(knownSubTTL)
	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h2")))
	assert.Len(t, f.inner.commits(), 4, "after the TTL the store decides")
}

// TestFailedCommitFailsItsWaiters: every caller of a failed commit gets
// its error, and the next record of the same key tries again.
func TestFailedCommitFailsItsWaiters(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	disk := errors.New("disk full")
	f.inner.setFail(disk)
	g := f.inner.holdPut()
	first := f.recordAsync(ctx, sub("c1", "first", "h"))
	<-g.entered
	second := f.recordAsync(ctx, sub("c1", "second", "h"))
	f.queued(t, 1)
	g.release()
	require.ErrorIs(t, <-first, disk)
	require.ErrorIs(t, <-second, disk)
	_, ok := f.stored(t, "c1", "first")
	require.False(t, ok)

	f.inner.setFail(nil)
	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "first", "h")))
	_, ok = f.stored(t, "c1", "first")
	assert.True(t, ok, "a failed record is not remembered as written")
}

// TestCancelledWaiter: a caller whose context ends stops waiting with
// its error; the record is still committed with the others.
func TestCancelledWaiter(t *testing.T) {
	f := newFixture(t)
	g := f.inner.holdPut()
	first := f.recordAsync(t.Context(), sub("c1", "first", "h"))
	<-g.entered
	ctx, cancel := context.WithCancel(t.Context())
	gone := f.recordAsync(ctx, sub("c1", "gone", "h"))
	f.queued(t, 1)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	g.release()
	require.NoError(t, <-first)
	require.NoError(t, f.st.RecordSubscription(t.Context(), sub("c1", "later", "h")))
	_, ok := f.stored(t, "c1", "gone")
	assert.True(t, ok)
}

// TestDeleteSubscriptionIsLastWord_TH39: a put queued behind a commit,
// then DeleteSubscription of its key: the delete waits out the commit in
// flight and drops the queued put, so the key stays deleted.
func TestDeleteSubscriptionIsLastWord_TH39(t *testing.T) {
	tests := []struct {
		name   string
		delete func(ctx context.Context, st *Store) error
	}{
		{"key", func(ctx context.Context, st *Store) error {
			err := st.DeleteSubscription(ctx, sub("c1", "gone", "").SubscriptionKey)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}},
		{"uri", func(ctx context.Context, st *Store) error {
			_, err := st.DeleteSubscriptionsByURI(ctx, "tracker", "gone")
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			// "gone" is in the commit held, and again (new hash) in the
			// next batch.
			g := f.inner.holdPut()
			first := f.recordAsync(ctx, sub("c1", "gone", "h1"))
			<-g.entered
			queued := f.recordAsync(ctx, sub("c1", "gone", "h2"))
			f.queued(t, 1)
			deleted := make(chan error, 1)
			go func() { deleted <- tc.delete(ctx, f.st) }()
			g.release()
			require.NoError(t, <-first)
			require.NoError(t, <-deleted)
			require.NoError(t, <-queued, "overtaken by the delete, not failed")
			// Another commit runs after the delete: nothing brings it back.
			require.NoError(t, f.st.RecordSubscription(ctx, sub("c2", "x", "h")))
			_, ok := f.stored(t, "c1", "gone")
			assert.False(t, ok, "the delete is the last word")

			// Deleted means unknown: the next unfurl records it again.
			require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "gone", "h2")))
			_, ok = f.stored(t, "c1", "gone")
			assert.True(t, ok)
		})
	}
}

// TestDeletedConnectionStaysGone_TH40: subscriptions of a connection
// queued and in flight when it is deleted never come back.
func TestDeletedConnectionStaysGone_TH40(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	g := f.inner.holdPut()
	inFlight := f.recordAsync(ctx, sub("c1", "a", "h"))
	<-g.entered
	queued := f.recordAsync(ctx, sub("c1", "b", "h"))
	keep := f.recordAsync(ctx, sub("c2", "b", "h"))
	f.queued(t, 2)
	deleted := make(chan error, 1)
	go func() { deleted <- f.st.DeleteConnection(ctx, "c1") }()
	g.release()
	require.NoError(t, <-inFlight)
	require.NoError(t, <-deleted)
	require.NoError(t, <-queued)
	require.NoError(t, <-keep)
	require.NoError(t, f.st.RecordSubscription(ctx, sub("c2", "c", "h"))) // one more commit after
	for _, uri := range []string{"a", "b"} {
		_, ok := f.stored(t, "c1", uri)
		assert.False(t, ok, uri)
	}
	_, ok := f.stored(t, "c2", "b")
	assert.True(t, ok, "another connection's record is kept")
}

// TestWritesForgetRememberedHashes: a delivery (AckOutbox) or a direct
// put changes the stored AttrHash, so the next unfurl with the old hash
// writes it again instead of being answered from memory.
func TestWritesForgetRememberedHashes(t *testing.T) {
	tests := []struct {
		name  string
		write func(ctx context.Context, st *Store) error
	}{
		{"AckOutbox", func(ctx context.Context, st *Store) error {
			it := store.OutboxItem{SubscriptionKey: sub("c1", "u1", "").SubscriptionKey, Body: []byte(`{}`), AttrHash: "delivered"}
			seq, err := st.Enqueue(ctx, it)
			if err != nil {
				return err
			}
			it.Seq = seq
			return st.AckOutbox(ctx, it, time.Now())
		}},
		{"PutSubscription", func(ctx context.Context, st *Store) error {
			_, err := st.PutSubscription(ctx, sub("c1", "u1", "delivered"))
			return err
		}},
		{"PutSubscriptions", func(ctx context.Context, st *Store) error {
			_, err := st.PutSubscriptions(ctx, []store.Subscription{sub("c1", "u1", "delivered")})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h1")))
			require.NoError(t, tc.write(ctx, f.st))
			hash, _ := f.stored(t, "c1", "u1")
			require.Equal(t, "delivered", hash)
			require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "u1", "h1")))
			hash, _ = f.stored(t, "c1", "u1")
			assert.Equal(t, "h1", hash, "the unfurl's answer is what Notion now shows")
		})
	}
}

// TestCloseWaitsForCommits: Close returns after the commit in flight and
// the one gathering; later records are refused.
func TestCloseWaitsForCommits(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	g := f.inner.holdPut()
	first := f.recordAsync(ctx, sub("c1", "first", "h"))
	<-g.entered
	second := f.recordAsync(ctx, sub("c1", "second", "h"))
	f.queued(t, 1)
	closed := make(chan struct{})
	go func() {
		f.st.subs.close()
		close(closed)
	}()
	g.release()
	<-closed
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	_, ok := f.stored(t, "c1", "second")
	assert.True(t, ok, "written before Close returned")
	require.ErrorIs(t, f.st.RecordSubscription(ctx, sub("c1", "late", "h")), ErrClosed)
}

// TestExpireForgetsRecorded: a link expired through the cached store is
// recorded again by its next unfurl, even with the hash the recorder
// remembers.
func TestExpireForgetsRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	old := sub("c1", "old", "h")
	old.UpdatedAt = f.clock().Add(-48 * time.Hour)
	require.NoError(t, f.st.RecordSubscription(ctx, old))
	gone, err := f.st.ExpireSubscriptions(ctx, "tracker", f.clock().Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []store.SubscriptionKey{old.SubscriptionKey}, gone)
	_, ok := f.stored(t, "c1", "old")
	require.False(t, ok)

	require.NoError(t, f.st.RecordSubscription(ctx, sub("c1", "old", "h")))
	_, ok = f.stored(t, "c1", "old")
	assert.True(t, ok, "recorded again")
}
