package live_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// TestWebhookFanOutBeyondTheQueue_F1: webhooks naming far more links than
// the in-memory queue holds (300 links in events of 100, a queue of 8)
// are all refreshed without waiting for a rescan: the refresher claims
// the pending marks from the store's index page after page as its
// workers free up (before, the links past the queue waited a minute for
// a scan of every subscription). Every acknowledged mark is durable until
// its refresh is recorded (F1), and each link is refreshed once.
func TestWebhookFanOutBeyondTheQueue_F1(t *testing.T) {
	e := newLiveEnv(t, 3600, func(o *live.RefresherOptions) {
		o.WebhookQueue, o.WebhookWorkers = 8, 2
	})
	const links, conns = 300, 30
	for c := range conns {
		e.connect("c"+strconv.Itoa(c), "tracker")
	}
	var uris []string
	keys := map[store.SubscriptionKey]bool{}
	for n := range links {
		e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "open")})
		keys[e.unfurled("c"+strconv.Itoa(n%conns), n)] = true
		uris = append(uris, trackerURI(n))
		e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "closed")})
	}
	for first := 0; first < links; first += 100 {
		n, err := e.r.RefreshURIs(t.Context(), "tracker", uris[first:first+100])
		require.NoError(t, err)
		require.Equal(t, 100, n)
	}
	for k := range keys {
		require.Equal(t, live.OutcomePending, e.sub(k).Refresh.Outcome, "marked before the answer: %s", k.URI)
	}

	stop := e.startRefresher()
	got := map[store.SubscriptionKey]int{}
	guard := time.After(30 * time.Second) // a guard against a hang, not a wait
	for len(got) < links {
		select {
		case r := <-e.refreshed:
			got[r.key]++
			assert.Equal(t, live.OutcomeChanged, r.out.Record.Outcome)
		case <-guard:
			t.Fatalf("refreshed %d of %d without the clock moving", len(got), links)
		}
	}
	stop()
	for len(e.refreshed) > 0 {
		r := <-e.refreshed
		got[r.key]++
	}
	for k := range keys {
		assert.Equal(t, 1, got[k], "refreshed once: %s", k.URI)
		assert.Equal(t, live.OutcomeChanged, e.sub(k).Refresh.Outcome, "the mark is cleared: %s", k.URI)
	}
	e.drain()
	assert.Len(t, e.calls(""), links)
}
