package cached

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// gateStore counts the commits of PutSubscriptions and their sizes, can
// make them fail, and can hold the next one (or the next GetToken) until
// released, so that a test controls what is in flight.
type gateStore struct {
	store.Store
	mu      sync.Mutex
	batches []int
	fail    error
	putGate *gate
	getGate *gate
}

// gate holds one call: entered is closed when the call arrives, and the
// call returns once release is called.
type gate struct {
	entered chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) release() { close(g.open) }

func (g *gate) pass() {
	close(g.entered)
	<-g.open
}

func (s *gateStore) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(subs))
	g, fail := s.putGate, s.fail
	s.putGate = nil
	s.mu.Unlock()
	if g != nil {
		g.pass()
	}
	if fail != nil {
		return 0, fail
	}
	return s.Store.PutSubscriptions(ctx, subs)
}

func (s *gateStore) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	t, err := s.Store.GetToken(ctx, kind, digest)
	s.mu.Lock()
	g := s.getGate
	s.getGate = nil
	s.mu.Unlock()
	if g != nil { // the read is done; its answer is held back
		g.pass()
	}
	return t, err
}

// holdPut holds the next PutSubscriptions.
func (s *gateStore) holdPut() *gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putGate = newGate()
	return s.putGate
}

// holdGet holds the next GetToken after it has read the store.
func (s *gateStore) holdGet() *gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.getGate = newGate()
	return s.getGate
}

func (s *gateStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *gateStore) commits() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

// fixture is a cached store over a gateStore over memory, holding
// connections c1 and c2, with a settable clock.
type fixture struct {
	inner *gateStore
	st    *Store
	clk   *clocktest.Fake
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{inner: &gateStore{Store: memory.New()}, clk: clocktest.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))}
	for _, id := range []string{"c1", "c2"} {
		require.NoError(t, f.inner.CreateConnection(t.Context(), store.Connection{
			ID: id, Provider: "tracker", AccountKey: "k-" + id, WorkspaceID: "w", AccountName: "name-" + id, Status: store.StatusActive,
		}))
	}
	f.st = New(f.inner, Options{Now: f.clock})
	t.Cleanup(func() { require.NoError(t, f.st.Close()) })
	return f
}

// clock and advance keep the fixture's own names for the fake clock's
// Now and Advance.
func (f *fixture) clock() time.Time        { return f.clk.Now() }
func (f *fixture) advance(d time.Duration) { f.clk.Advance(d) }

func sub(conn, uri, hash string) store.Subscription {
	return store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri}, AttrHash: hash}
}

// stored returns the stored hash of (conn, uri), reading the wrapped
// store directly.
func (f *fixture) stored(t *testing.T, conn, uri string) (string, bool) {
	t.Helper()
	s, err := f.inner.Store.GetSubscription(t.Context(), sub(conn, uri, "").SubscriptionKey)
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	require.NoError(t, err)
	return s.AttrHash, true
}

// queued waits until n records gather behind the commit in flight. It
// polls: the records are added by goroutines the test started.
func (f *fixture) queued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.st.subs.mu.Lock()
		got := 0
		if f.st.subs.next != nil {
			got = len(f.st.subs.next.subs)
		}
		f.st.subs.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records queued", got, n)
		}
		time.Sleep(time.Millisecond) // a poll interval, not a synchronisation
	}
}

// recordAsync records s in a goroutine and returns its outcome channel.
func (f *fixture) recordAsync(ctx context.Context, s store.Subscription) chan error {
	done := make(chan error, 1)
	go func() { done <- f.st.RecordSubscription(ctx, s) }()
	return done
}

// returned reports whether a call's outcome is already in.
func returned(done chan error) bool {
	select {
	case err := <-done:
		done <- err // put back for the caller's later receive
		return true
	default:
		return false
	}
}
