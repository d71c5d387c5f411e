package provider_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// conditionalConfig has a pattern of two requests: the primary item and
// its comments.
const conditionalConfig = `
server: {mode: development}
providers:
  - name: acme
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      cache_ttl: 1m
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests:
          - {name: item, url: "/items/{id}"}
          - {name: comments, url: "/items/{id}/comments"}
        attributes:
          - {id: title, kind: title, path: title}
          - {id: comments, kind: plain_text, section: secondary, expr: 'string(comments.count)'}
`

// conditionalUpstream answers the item with an ETag and honours
// If-None-Match; it records the conditional headers per path.
type conditionalUpstream struct {
	mu    sync.Mutex
	etag  string
	seen  map[string][]string
	limit string
}

func (u *conditionalUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen[r.URL.Path] = append(u.seen[r.URL.Path], r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
	w.Header().Set("X-RateLimit-Remaining", u.limit)
	if strings.HasSuffix(r.URL.Path, "/comments") {
		_, _ = io.WriteString(w, `{"count":3}`)
		return
	}
	w.Header().Set("ETag", u.etag)
	w.Header().Set("Last-Modified", "Fri, 14 Mar 2025 15:00:00 GMT")
	if r.Header.Get("If-None-Match") == u.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = io.WriteString(w, `{"title":"Item `+strings.Trim(u.etag, `"`)+`"}`)
}

func buildConditional(t *testing.T) (*provider.Provider, *conditionalUpstream) {
	t.Helper()
	up := &conditionalUpstream{etag: `"v1"`, seen: map[string][]string{}, limit: "4999"}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	cfg, errs := config.Parse("c.yaml", []byte(strings.ReplaceAll(conditionalConfig, "UPSTREAM", srv.URL)), config.LoadOptions{LookupEnv: noEnv})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	p, ok := reg.Get("acme")
	require.True(t, ok)
	return p, up
}

// TestConditionalUnfurl: a NoCache unfurl reports the primary request's
// validators and the rate limit; with validators only the primary
// request is conditional, and a 304 gives a NotModified result that
// neither the result cache nor a plain unfurl ever sees (issue 4 item 2).
func TestConditionalUnfurl(t *testing.T) {
	p, up := buildConditional(t)
	const uri = "https://acme.example/items/1"
	ctx := t.Context()

	r := p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	require.Nil(t, r.Error, "%s", r.Body)
	assert.False(t, r.NotModified)
	assert.Equal(t, provider.Validators{ETag: `"v1"`, LastModified: "Fri, 14 Mar 2025 15:00:00 GMT"}, r.Upstream.Validators)
	assert.Equal(t, 200, r.Upstream.Status)
	assert.Equal(t, 2, r.Upstream.Requests)
	assert.True(t, r.Upstream.RateLimit.Known)
	assert.Equal(t, 4999, r.Upstream.RateLimit.Remaining)
	assert.Nil(t, p.Cached(uri, provider.Credential{}), "a fresh unfurl does not fill the cache")

	v := r.Upstream.Validators
	r = p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true, Validators: v})
	assert.True(t, r.NotModified)
	assert.Nil(t, r.Body)
	assert.Empty(t, r.Hash)
	assert.Equal(t, 304, r.Upstream.Status)
	up.mu.Lock()
	assert.Equal(t, []string{"|", `"v1"|Fri, 14 Mar 2025 15:00:00 GMT`}, up.seen["/items/1"])
	for _, h := range up.seen["/items/1/comments"] {
		assert.Equal(t, "|", h, "only the primary request is conditional")
	}
	up.mu.Unlock()

	plain := p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{})
	require.Nil(t, plain.Error)
	assert.False(t, plain.NotModified)
	assert.NotEmpty(t, plain.Body)
	assert.Equal(t, provider.UpstreamInfo{}, plain.Upstream, "only NoCache unfurls report the upstream")

	up.mu.Lock()
	up.etag = `"v2"`
	up.mu.Unlock()
	r = p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true, Validators: v})
	require.Nil(t, r.Error)
	assert.False(t, r.NotModified)
	assert.Contains(t, string(r.Body), "Item v2")
	assert.Equal(t, `"v2"`, r.Upstream.Validators.ETag)
}
