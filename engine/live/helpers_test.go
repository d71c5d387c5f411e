package live_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// t0 is the fake clock's start.
var t0 = time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)

// fullStore is a store with its outbox; live.Store is the part the
// Deliverer uses, the tests need the rest too.
type fullStore interface {
	store.Store
	store.Outbox
	store.Schedule
}

// testEnv is a Deliverer over a store, a fake Notion and a fake clock.
type testEnv struct {
	t      testing.TB
	clock  *clocktest.Fake
	notion *notiontest.Server
	client *notion.Client
	keys   *sealing.Keyring
	st     fullStore
	d      *live.Deliverer
	opts   live.Options
	// tokens maps connection ids to their Notion tokens.
	tokens map[string]string
}

// newEnv builds the environment on a memory store; edit adjusts the
// options before New. Backoff jitter is fixed at its middle, so waits are
// exact.
func newEnv(t *testing.T, edit ...func(*live.Options)) *testEnv {
	t.Helper()
	return newEnvWith(t, memory.New(), edit...)
}

func newEnvWith(t testing.TB, st fullStore, edit ...func(*live.Options)) *testEnv {
	t.Helper()
	clk := clocktest.New(t0)
	fake := notiontest.New(t, notiontest.WithClock(clk.Now))
	client, err := notion.NewClient(notion.ClientOptions{BaseURL: fake.URL()})
	require.NoError(t, err)
	t.Cleanup(client.CloseIdleConnections)
	keys, err := sealing.NewKeyring("k1", bytes.Repeat([]byte{7}, 32), nil)
	require.NoError(t, err)
	e := &testEnv{t: t, clock: clk, notion: fake, client: client, keys: keys, tokens: map[string]string{}}
	e.opts = live.Options{
		Store: st, Notion: client, Keyring: keys, Clock: clk,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Rand:   func() float64 { return 0.5 },
	}
	for _, f := range edit {
		f(&e.opts)
	}
	e.setStore(st)
	return e
}

// setStore (re)builds the Deliverer over st, as after a restart.
func (e *testEnv) setStore(st fullStore) {
	e.t.Helper()
	e.st = st
	e.opts.Store = st
	d, err := live.New(e.opts)
	require.NoError(e.t, err)
	e.d = d
}

// connect creates an active connection whose sealed Notion token the fake
// Notion accepts.
func (e *testEnv) connect(id, provider string) {
	e.t.Helper()
	conn := store.Connection{
		ID: id, Provider: provider, AccountKey: "acct-" + id, WorkspaceID: "ws-" + id,
		Status: store.StatusActive, CreatedAt: t0, UpdatedAt: t0,
	}
	token := "ntn_" + id
	sealed, err := sealing.SealConnectionField(e.keys, conn, sealing.FieldNotionToken, []byte(token))
	require.NoError(e.t, err)
	conn.NotionToken = sealed
	require.NoError(e.t, e.st.CreateConnection(e.t.Context(), conn))
	e.notion.AddToken(token)
	e.tokens[id] = token
}

// subscribe records that connection conn unfurled uri, answering
// attributes with hash "hash-unfurled".
func (e *testEnv) subscribe(provider, conn, uri string) store.SubscriptionKey {
	e.t.Helper()
	k := store.SubscriptionKey{Provider: provider, ConnectionID: conn, URI: uri}
	_, err := e.st.PutSubscription(e.t.Context(), store.Subscription{
		SubscriptionKey: k, AttrHash: "hash-unfurled", CreatedAt: t0, UpdatedAt: t0,
	})
	require.NoError(e.t, err)
	return k
}

// body is the full attribute set of a preview whose title is title
// (protocol 7.2: every attribute, title and dev included).
func body(uri, title string) []byte {
	return fmt.Appendf(nil, `{"uri":%q,"operations":[{"path":["attributes"],"set":[`+
		`{"id":"title","name":"Title","type":"inline","inline":{"title":{"value":%q,"section":"title"}}},`+
		`{"id":"dev","name":"Developer Name","type":"inline","inline":{"plain_text":{"value":"unfurld","section":"secondary"}}},`+
		`{"id":"state","name":"State","type":"inline","inline":{"enum":{"value":"open","section":"primary"}}}`+
		`]}]}`, uri, title)
}

// push queues the state titled title for k and requires that it queued.
func (e *testEnv) push(k store.SubscriptionKey, title string) {
	e.t.Helper()
	queued, err := e.d.Push(e.t.Context(), k, body(k.URI, title), "hash-"+title)
	require.NoError(e.t, err)
	require.True(e.t, queued, "push %s", title)
}

// deliver runs one DeliverDue and returns when the next item is due.
func (e *testEnv) deliver() time.Time {
	e.t.Helper()
	next, err := e.d.DeliverDue(e.t.Context())
	require.NoError(e.t, err)
	return next
}

// drain delivers and moves the clock to each next due time until the
// outbox is empty.
func (e *testEnv) drain() {
	e.t.Helper()
	for range 1000 {
		next := e.deliver()
		if next.IsZero() {
			return
		}
		e.clock.Set(next)
	}
	e.t.Fatal("outbox did not drain")
}

// calls returns the recorded PATCHes presenting the token of connection
// conn ("" for all).
func (e *testEnv) calls(conn string) []notiontest.PatchCall {
	var out []notiontest.PatchCall
	for _, c := range e.notion.PatchCalls() {
		if conn == "" || c.Token == e.tokens[conn] {
			out = append(out, c)
		}
	}
	return out
}

// offsets returns the calls' times relative to t0.
func offsets(calls []notiontest.PatchCall) []time.Duration {
	out := make([]time.Duration, len(calls))
	for i, c := range calls {
		out[i] = c.Time.Sub(t0)
	}
	return out
}

// stubNotion answers UpdateObject from a list of results, then nil.
type stubNotion struct {
	mu      sync.Mutex
	results []func(ctx context.Context) error
	calls   int
}

func (s *stubNotion) UpdateObject(ctx context.Context, _ config.Secret, _ notion.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.results) == 0 {
		return nil
	}
	r := s.results[0]
	s.results = s.results[1:]
	return r(ctx)
}

func (s *stubNotion) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
