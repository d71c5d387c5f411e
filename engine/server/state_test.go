package server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// batchStore counts PutSubscriptions calls and their sizes. When gate is
// set, each call first reports itself on entered and then waits for gate
// to be closed, so a test can hold the writer in a commit.
type batchStore struct {
	store.Store
	mu      sync.Mutex
	batches []int
	fail    error
	entered chan struct{}
	gate    chan struct{}
	conns   int // GetConnection calls
	tokens  int // GetToken calls
}

func (b *batchStore) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(subs))
	fail, entered, gate := b.fail, b.entered, b.gate
	b.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-gate
	}
	if fail != nil {
		return 0, fail
	}
	return b.Store.PutSubscriptions(ctx, subs)
}

func (b *batchStore) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	b.mu.Lock()
	b.conns++
	b.mu.Unlock()
	return b.Store.GetConnection(ctx, id)
}

func (b *batchStore) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	b.mu.Lock()
	b.tokens++
	b.mu.Unlock()
	return b.Store.GetToken(ctx, kind, digest)
}

func (b *batchStore) calls() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.batches...)
}

// hold makes the next PutSubscriptions wait until the returned release
// is called; entered receives when it has started.
func (b *batchStore) hold() (entered chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entered, b.gate = make(chan struct{}, 1), make(chan struct{})
	entered, gate := b.entered, b.gate
	return entered, func() {
		b.mu.Lock()
		b.entered, b.gate = nil, nil
		b.mu.Unlock()
		close(gate)
	}
}

// recorderFixture is a recorder over a memory store holding connection
// "c1", with a settable clock.
type recorderFixture struct {
	st  *batchStore
	rec *subscriptionRecorder
	mu  sync.Mutex
	now time.Time
}

func newRecorderFixture(t *testing.T) *recorderFixture {
	t.Helper()
	st := &batchStore{Store: memory.New()}
	require.NoError(t, st.CreateConnection(t.Context(), store.Connection{ID: "c1", Provider: "tracker", AccountKey: "k1"}))
	f := &recorderFixture{st: st, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	f.rec = newSubscriptionRecorder(st, log, f.clock)
	t.Cleanup(func() { require.NoError(t, f.rec.Close(context.Background())) })
	return f
}

func (f *recorderFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *recorderFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func sub(uri, hash string) store.Subscription {
	return store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: uri}, AttrHash: hash}
}

func (f *recorderFixture) stored(t *testing.T, uri string) (string, bool) {
	t.Helper()
	s, err := f.st.GetSubscription(t.Context(), sub(uri, "").SubscriptionKey)
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	require.NoError(t, err)
	return s.AttrHash, true
}

// TestRecorderSkipsUnchanged: a warm unfurl (same hash) costs no write;
// a changed hash is written; after knownSubTTL the store is asked again
// (and skips the unchanged record itself).
func TestRecorderSkipsUnchanged(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	f.rec.record(ctx, sub("u1", "h1"))
	require.NoError(t, f.rec.Flush(ctx))
	f.rec.record(ctx, sub("u1", "h1"))
	require.NoError(t, f.rec.Flush(ctx))
	assert.Equal(t, []int{1}, f.st.calls(), "the repeat is answered from memory")

	f.rec.record(ctx, sub("u1", "h2"))
	require.NoError(t, f.rec.Flush(ctx))
	hash, ok := f.stored(t, "u1")
	require.True(t, ok)
	assert.Equal(t, "h2", hash)
	assert.Equal(t, []int{1, 1}, f.st.calls())

	f.advance(knownSubTTL)
	f.rec.record(ctx, sub("u1", "h2"))
	require.NoError(t, f.rec.Flush(ctx))
	assert.Equal(t, []int{1, 1, 1}, f.st.calls(), "after the TTL the store decides")
}

// TestRecorderBatches: whatever arrives while a commit runs goes to the
// store in one PutSubscriptions call, one transaction (issue 2).
func TestRecorderBatches(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	entered, release := f.st.hold()
	f.rec.record(ctx, sub("first", "h"))
	<-entered // the writer is inside the first commit
	for i := range 100 {
		f.rec.record(ctx, sub("u"+strconv.Itoa(i), "h"))
	}
	release()
	require.NoError(t, f.rec.Flush(ctx))
	assert.Equal(t, []int{1, 100}, f.st.calls())
	for _, uri := range []string{"first", "u0", "u99"} {
		_, ok := f.stored(t, uri)
		assert.True(t, ok, uri)
	}
}

// TestRecorderCloseWrites: Close writes what is pending (a graceful stop
// loses no answered unfurl's subscription); later records are dropped.
func TestRecorderCloseWrites(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	f.rec.record(ctx, sub("u1", "h1"))
	require.NoError(t, f.rec.Close(ctx))
	_, ok := f.stored(t, "u1")
	assert.True(t, ok, "written by Close")

	f.rec.record(ctx, sub("late", "h1"))
	require.NoError(t, f.rec.Close(ctx), "Close twice")
	require.NoError(t, f.rec.Flush(ctx))
	_, ok = f.stored(t, "late")
	assert.False(t, ok)
}

// TestRecorderForgetWaitsForCommit: forget returns only after a commit in
// progress, and drops what is pending for the key, so a delete that
// follows it is the last word (protocol 5.6).
func TestRecorderForgetWaitsForCommit(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	entered, release := f.st.hold()
	f.rec.record(ctx, sub("other", "h"))
	<-entered
	f.rec.record(ctx, sub("gone", "h")) // pending behind the commit

	forgot := make(chan struct{})
	go func() {
		f.rec.forget(func(k store.SubscriptionKey) bool { return k.URI == "gone" })
		close(forgot)
	}()
	select {
	case <-forgot:
		t.Fatal("forget returned during a commit")
	case <-time.After(20 * time.Millisecond): // only to give a wrong forget the chance to return
	}
	release()
	<-forgot
	require.NoError(t, f.rec.Flush(ctx))
	_, ok := f.stored(t, "gone")
	assert.False(t, ok, "the pending write was dropped")

	// Forgotten means unknown: the next unfurl records it again.
	f.rec.record(ctx, sub("gone", "h"))
	require.NoError(t, f.rec.Flush(ctx))
	_, ok = f.stored(t, "gone")
	assert.True(t, ok)
}

// TestRecorderRetriesAfterFailure: a failed commit forgets its records,
// so the next unfurl of each queues it again.
func TestRecorderRetriesAfterFailure(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	f.st.mu.Lock()
	f.st.fail = errors.New("disk full")
	f.st.mu.Unlock()
	f.rec.record(ctx, sub("u1", "h1"))
	require.NoError(t, f.rec.Flush(ctx))
	_, ok := f.stored(t, "u1")
	require.False(t, ok)

	f.st.mu.Lock()
	f.st.fail = nil
	f.st.mu.Unlock()
	f.rec.record(ctx, sub("u1", "h1"))
	require.NoError(t, f.rec.Flush(ctx))
	_, ok = f.stored(t, "u1")
	assert.True(t, ok)
}

// TestRecorderFullWaitsForRoom: with maxPendingSubs waiting, a record
// waits for the writer, and gives up when its request ends.
func TestRecorderFullWaitsForRoom(t *testing.T) {
	f := newRecorderFixture(t)
	ctx := t.Context()
	entered, release := f.st.hold()
	f.rec.record(ctx, sub("first", "h"))
	<-entered
	for i := range maxPendingSubs {
		f.rec.record(ctx, sub("u"+strconv.Itoa(i), "h"))
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	f.rec.record(cancelled, sub("dropped", "h")) // returns: its request is over

	waited := make(chan struct{})
	go func() {
		f.rec.record(ctx, sub("waits", "h"))
		close(waited)
	}()
	release()
	<-waited
	require.NoError(t, f.rec.Flush(ctx))
	_, ok := f.stored(t, "waits")
	assert.True(t, ok)
	_, ok = f.stored(t, "dropped")
	assert.False(t, ok)
}

// TestBearerCacheEpoch: a lookup that read the store before an
// invalidation does not cache what it read (TH-26).
func TestBearerCacheEpoch(t *testing.T) {
	c := newBearerCache()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	b := bearer{token: store.Token{Digest: "d1", ConnectionID: "c1", GrantID: "g1"}}

	epoch := c.begin()
	c.forgetToken("other")
	c.put("d1", b, epoch, now)
	_, ok := c.get("d1", now)
	assert.False(t, ok, "put after an invalidation is dropped")

	c.put("d1", b, c.begin(), now)
	_, ok = c.get("d1", now)
	require.True(t, ok)
	_, ok = c.get("d1", now.Add(bearerTTL))
	assert.False(t, ok, "expired after bearerTTL")

	for name, forget := range map[string]func(){
		"token":      func() { c.forgetToken("d1") },
		"connection": func() { c.forgetConnection("c1") },
		"grant":      func() { c.forgetGrant("g1") },
		"all":        c.reset,
	} {
		c.put("d1", b, c.begin(), now)
		forget()
		_, ok := c.get("d1", now)
		assert.False(t, ok, name)
	}
}

// TestLookupBearerCaching: a bearer is read from the store once per
// bearerTTL, except a connection holding an upstream credential, which
// is read on every request so a rotated credential is never replaced by
// a stale copy (TH-37). Changes through the server's store drop the
// cached bearer at once (TH-26).
func TestLookupBearerCaching(t *testing.T) {
	ctx := t.Context()
	st := &batchStore{Store: memory.New()}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := New(Config{Store: st, Now: func() time.Time { return now }})
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	require.NoError(t, st.CreateConnection(ctx, store.Connection{ID: "plain", Provider: "tracker", AccountKey: "k1"}))
	require.NoError(t, st.CreateConnection(ctx, store.Connection{ID: "oauth", Provider: "tracker", AccountKey: "k2", UpstreamCredential: []byte("sealed")}))
	require.NoError(t, st.CreateToken(ctx, store.Token{Digest: "d-plain", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "plain"}))
	require.NoError(t, st.CreateToken(ctx, store.Token{Digest: "d-oauth", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "oauth"}))

	for range 3 {
		b, err := s.lookupBearer(ctx, "d-plain", now)
		require.NoError(t, err)
		assert.Equal(t, "plain", b.conn.ID)
	}
	assert.Equal(t, 1, st.tokens)
	assert.Equal(t, 1, st.conns)

	for range 3 {
		b, err := s.lookupBearer(ctx, "d-oauth", now)
		require.NoError(t, err)
		assert.Equal(t, []byte("sealed"), b.conn.UpstreamCredential)
	}
	assert.Equal(t, 2, st.tokens, "the token is cached")
	assert.Equal(t, 4, st.conns, "the credential-holding connection is not")

	// The handlers' store is the invalidating one.
	require.NoError(t, s.cfg.Store.DeleteConnection(ctx, "plain"))
	_, err := s.lookupBearer(ctx, "d-plain", now)
	var be *bearerError
	require.ErrorAs(t, err, &be)

	_, err = s.lookupBearer(ctx, "unknown", now)
	require.ErrorAs(t, err, &be)
	_, err = s.lookupBearer(ctx, "unknown", now)
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 5, st.tokens, "unknown tokens are not cached")
}

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		require.Len(t, id, 32)
		require.NotContains(t, seen, id)
		seen[id] = true
	}
}
