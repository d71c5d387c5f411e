package provider_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// heldProvider builds the bench provider against an upstream that holds
// every request (up.Held reports each) until release is called.
func heldProvider(t *testing.T) (p *provider.Provider, up *upstreamtest.Server, release func()) {
	t.Helper()
	up = upstreamtest.New(t)
	up.Set("/repos/octo-org/hello-world/issues/1347", upstreamtest.Response{Body: string(benchIssueJSON(t))})
	release = up.HoldAPI()
	p = buildAgainst(t, benchConfig, up.URL(), "bench")
	return p, up, release
}

// TestUnfurlSharesOneRun: the first caller runs the unfurl on its own
// goroutine; a caller arriving meanwhile waits for it, or answers "try
// later" at once when its own request ends (TH-38); the run goes on
// whatever happens to the first caller's context, and its result is
// cached for everyone after.
func TestUnfurlSharesOneRun(t *testing.T) {
	p, up, release := heldProvider(t)
	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	defer cancelLeader()
	first := make(chan *provider.Result, 1)
	go func() { first <- p.Unfurl(leaderCtx, benchURI, provider.Credential{}, provider.UnfurlOptions{}) }()
	<-up.Held() // the first caller's run is at the upstream

	gone, cancel := context.WithCancel(t.Context())
	cancel()
	r := p.Unfurl(gone, benchURI, provider.Credential{}, provider.UnfurlOptions{})
	require.NotNil(t, r.Error, "a waiter whose request ended")
	assert.Equal(t, 503, r.Error.Status)

	waiter := make(chan *provider.Result, 1)
	go func() { waiter <- p.Unfurl(t.Context(), benchURI, provider.Credential{}, provider.UnfurlOptions{}) }()

	cancelLeader() // the run is detached from it
	release()
	lr, wr := <-first, <-waiter
	require.Nil(t, lr.Error, string(lr.Body))
	require.Nil(t, wr.Error, string(wr.Body))
	assert.Equal(t, lr.Body, wr.Body)
	assert.Len(t, up.Requests(), 1, "one upstream call for all callers")

	hit := p.Cached(benchURI, provider.Credential{})
	require.NotNil(t, hit)
	assert.True(t, hit.Cached)
	assert.Equal(t, lr.Body, hit.Body)
	assert.Same(t, hit, p.Unfurl(t.Context(), benchURI, provider.Credential{}, provider.UnfurlOptions{}), "a hit allocates nothing")
	assert.Nil(t, p.Cached(benchURI, provider.Credential{Key: "conn-1"}), "results are per credential (TH-27)")
	assert.Len(t, up.Requests(), 1)
}

// TestRefusedURIsAreNotCached: the result cache answers before Match, so
// it must never hold the answer for a URI that Match refused (TH-28).
func TestRefusedURIsAreNotCached(t *testing.T) {
	p, up, _ := heldProvider(t)
	for _, uri := range []string{"https://evil.example.com/o/r/issues/1", "https://github.com/o/r/pulls/1", "https://github.com/o/r/issues/1\n"} {
		for range 2 {
			r := p.Unfurl(t.Context(), uri, provider.Credential{}, provider.UnfurlOptions{})
			require.NotNil(t, r.Error, uri)
			assert.False(t, r.Cached, uri)
		}
		assert.Nil(t, p.Cached(uri, provider.Credential{}), uri)
	}
	assert.Empty(t, up.Requests())
}
