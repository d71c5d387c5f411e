package live_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// upstreamTimes returns when each request to up came, by the fake
// clock, relative to t0.
func upstreamTimes(up *upstreamtest.Server) []time.Duration {
	var out []time.Duration
	for _, r := range up.Requests() {
		out = append(out, r.Time.Sub(t0))
	}
	return out
}

// item is an upstream object of the tracker provider.
func item(title, state string) string {
	return fmt.Sprintf(`{"title":%q,"state":%q}`, title, state)
}

// trackerURI is the link of item n.
func trackerURI(n int) string { return "https://tracker.example.com/items/" + strconv.Itoa(n) }

// itemPath is the upstream path of item n.
func itemPath(n int) string { return "/items/" + strconv.Itoa(n) }

// webhookSecret signs the tracker's test webhooks.
const webhookSecret = "tracker-webhook-secret"

// trackerConfig is the provider under test; UPSTREAM and BUDGET are
// replaced.
const trackerConfig = `
server: {mode: development}
providers:
  - name: tracker
    dev: Acme
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
    live:
      poll_interval: 10m
      max_requests_per_hour: BUDGET
      webhook:
        secret: ` + webhookSecret + `
        header: X-Tracker-Signature
        prefix: "sha256="
        uris: '[event.item.url]'
    patterns:
      - name: item
        regex: '^https://tracker\.example\.com/items/(?<id>\d{1,10})/?(?:[?#].*)?$'
        samples: [https://tracker.example.com/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: state, kind: enum, path: state}
`

// liveEnv is a Deliverer (testEnv) plus a fake upstream, the tracker
// provider and a Refresher over the same memory store and clock.
type liveEnv struct {
	*testEnv
	up  *upstreamtest.Server
	reg *provider.Registry
	p   *provider.Provider
	r   *live.Refresher
	// settings are the server settings of the configuration.
	settings config.Server
	// refreshed receives every refresh's outcome (OnRefresh).
	refreshed chan refreshed
	// latency is how far each upstream request moves the fake clock (as
	// a time.Duration): the upstream's latency, which a refresh measures
	// by its clock.
	latency atomic.Int64
}

type refreshed struct {
	key store.SubscriptionKey
	out live.Outcome
}

// newLiveEnv builds the environment with a budget of budget requests an
// hour; edit adjusts the refresher's options.
func newLiveEnv(t *testing.T, budget int, edit ...func(*live.RefresherOptions)) *liveEnv {
	t.Helper()
	return newLiveEnvWith(t, newEnv(t), budget, edit...)
}

// newLiveEnvWith is newLiveEnv over the environment e (its store).
func newLiveEnvWith(t *testing.T, e *testEnv, budget int, edit ...func(*live.RefresherOptions)) *liveEnv {
	t.Helper()
	le := &liveEnv{testEnv: e, refreshed: make(chan refreshed, 256)}
	// The fake stamps each request with the fake clock, so tests assert
	// fetch times on the injected clock; then it moves the clock on by
	// the latency.
	up := upstreamtest.New(t, upstreamtest.WithClock(func() time.Time {
		now := e.clock.Now()
		e.clock.Advance(time.Duration(le.latency.Load()))
		return now
	}))
	le.up = up
	yml := strings.NewReplacer("UPSTREAM", up.URL(), "BUDGET", strconv.Itoa(budget)).Replace(trackerConfig)
	cfg, errs := config.Parse("live.yaml", []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	comp, berrs := compiled.Compile(cfg, compiled.Options{Logger: logger, Now: e.clock.Now})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)
	p, ok := reg.Get("tracker")
	require.True(t, ok)
	le.reg, le.p, le.settings = reg, p, cfg.Server
	opts := live.RefresherOptions{
		Store: e.st, Registry: reg, Pusher: e.d, Logger: logger, Clock: e.clock,
		OnRefresh: func(k store.SubscriptionKey, out live.Outcome) { le.refreshed <- refreshed{k, out} },
	}
	for _, f := range edit {
		f(&opts)
	}
	r, err := live.NewRefresher(opts)
	require.NoError(t, err)
	le.r = r
	return le
}

// unfurled records that connection conn unfurled item n as the server
// does: the subscription holds the hash of the answer Notion got.
func (e *liveEnv) unfurled(conn string, n int) store.SubscriptionKey {
	e.t.Helper()
	res := e.p.Unfurl(e.t.Context(), trackerURI(n), provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	require.Nil(e.t, res.Error, "%s", res.Body)
	k := store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: trackerURI(n)}
	_, err := e.st.PutSubscription(e.t.Context(), store.Subscription{SubscriptionKey: k, AttrHash: res.Hash, CreatedAt: t0, UpdatedAt: t0})
	require.NoError(e.t, err)
	return k
}

// refresh refreshes k and requires no store error.
func (e *liveEnv) refresh(k store.SubscriptionKey) live.Outcome {
	e.t.Helper()
	out, err := e.r.Refresh(e.t.Context(), k, live.TriggerPoll)
	require.NoError(e.t, err)
	return out
}

// flush writes the pending refresh records.
func (e *liveEnv) flush() {
	e.t.Helper()
	require.NoError(e.t, e.r.Flush(e.t.Context()))
}

// sub reads k's subscription.
func (e *liveEnv) sub(k store.SubscriptionKey) store.Subscription {
	e.t.Helper()
	s, err := e.st.GetSubscription(e.t.Context(), k)
	require.NoError(e.t, err)
	return s
}

// patchOps decodes a PATCH body into its operations' paths and sets.
func patchOps(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var env struct {
		Operations []struct {
			Path []string        `json:"path"`
			Set  json.RawMessage `json:"set"`
		} `json:"operations"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	out := map[string]json.RawMessage{}
	for _, op := range env.Operations {
		out[strings.Join(op.Path, ".")] = op.Set
	}
	return out
}

// seqRand returns the given numbers in turn, then rest forever.
func seqRand(rest float64, first ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(first) == 0 {
			return rest
		}
		v := first[0]
		first = first[1:]
		return v
	}
}
