package provider_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
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

// lastModified is the item's Last-Modified.
const lastModified = "Fri, 14 Mar 2025 15:00:00 GMT"

// setItem makes the item answer at version etag with its validators; the
// upstream announces its rate limit on every answer.
func setItem(up *upstreamtest.Server, etag string) {
	limit := map[string]string{"X-RateLimit-Remaining": "4999"}
	up.Set("/items/1", upstreamtest.Response{
		Body: `{"title":"Item ` + strings.Trim(etag, `"`) + `"}`, ETag: etag, LastModified: lastModified, Header: limit,
	})
	up.Set("/items/1/comments", upstreamtest.Response{Body: `{"count":3}`, Header: limit})
}

func buildConditional(t *testing.T) (*provider.Provider, *upstreamtest.Server) {
	t.Helper()
	up := upstreamtest.New(t)
	setItem(up, `"v1"`)
	p := buildAgainst(t, conditionalConfig, up.URL(), "acme")
	return p, up
}

// conditionals returns the If-None-Match|If-Modified-Since of each
// request to path.
func conditionals(up *upstreamtest.Server, path string) []string {
	var out []string
	for _, r := range up.RequestsTo(path) {
		out = append(out, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
	}
	return out
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
	assert.Equal(t, []string{"|", `"v1"|Fri, 14 Mar 2025 15:00:00 GMT`}, conditionals(up, "/items/1"))
	for _, h := range conditionals(up, "/items/1/comments") {
		assert.Equal(t, "|", h, "only the primary request is conditional")
	}

	plain := p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{})
	require.Nil(t, plain.Error)
	assert.False(t, plain.NotModified)
	assert.NotEmpty(t, plain.Body)
	assert.Equal(t, provider.UpstreamInfo{}, plain.Upstream, "only NoCache unfurls report the upstream")

	setItem(up, `"v2"`)
	r = p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true, Validators: v})
	require.Nil(t, r.Error)
	assert.False(t, r.NotModified)
	assert.Contains(t, string(r.Body), "Item v2")
	assert.Equal(t, `"v2"`, r.Upstream.Validators.ETag)
}
