package provider_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/provider"
)

// The benchmarks below measure the hot path of issue 2's performance bars
// on a ~6 KB GitHub-issue body: matching, mapping and envelope encoding,
// with and without the result cache and the loopback upstream. Run them
// with:
//
//	go test -run '^$' -bench . -benchmem ./engine/provider

// benchConfig is a GitHub-like provider with the attribute mix of a real
// one: plain paths, an enum with colors, an embed, a datetime and two
// expressions. UPSTREAM is replaced with the fake's URL.
const benchConfig = `
server:
  mode: development
  unfurl_timeout: 5s
providers:
  - name: bench
    dev: Bench Inc
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      embed_hosts: [avatars.githubusercontent.com]
      cache_ttl: 10m
    patterns:
      - name: issue
        regex: '^https://github\.com/(?<owner>[A-Za-z0-9-]{1,39})/(?<repo>[A-Za-z0-9._-]{1,100})/issues/(?<number>\d{1,10})$'
        samples: [https://github.com/octo-org/hello-world/issues/1347]
        requests:
          - name: issue
            url: /repos/{owner}/{repo}/issues/{number}
        attributes:
          - {id: title, kind: title, expr: '"#" + groups.number + " " + issue.title'}
          - id: state
            kind: enum
            path: state
            colors: {open: "#1a7f37", closed: "#8250df"}
          - {id: author, kind: plain_text, section: secondary, path: user.login}
          - {id: avatar, kind: image, section: avatar, path: user.avatar_url}
          - {id: updated, kind: datetime, section: secondary, path: updated_at}
          - {id: labels, kind: plain_text, section: secondary, expr: 'join(map(issue.labels, .name), ", ")'}
          - {id: body, kind: plain_text, section: body, path: body, max_length: 200}
`

const benchURI = "https://github.com/octo-org/hello-world/issues/1347"

// benchIssueJSON builds a GitHub issue shaped like the REST API's
// (GET /repos/{owner}/{repo}/issues/{number}) of about 6 KB, so gjson
// has to skip realistic amounts of text to reach each field.
func benchIssueJSON(tb testing.TB) []byte {
	tb.Helper()
	user := func(login string, id int) map[string]any {
		base := "https://api.github.com/users/" + login
		return map[string]any{
			"login": login, "id": id, "node_id": fmt.Sprintf("MDQ6VXNlcj%d=", id),
			"avatar_url":  fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
			"gravatar_id": "", "url": base, "html_url": "https://github.com/" + login,
			"followers_url": base + "/followers", "following_url": base + "/following{/other_user}",
			"gists_url": base + "/gists{/gist_id}", "starred_url": base + "/starred{/owner}{/repo}",
			"subscriptions_url": base + "/subscriptions", "organizations_url": base + "/orgs",
			"repos_url": base + "/repos", "events_url": base + "/events{/privacy}",
			"received_events_url": base + "/received_events", "type": "User", "site_admin": false,
		}
	}
	label := func(id int, name, color string) map[string]any {
		return map[string]any{
			"id": id, "node_id": fmt.Sprintf("MDU6TGFiZWw%d", id), "name": name, "color": color, "default": false,
			"url":         "https://api.github.com/repos/octo-org/hello-world/labels/" + strings.ReplaceAll(name, " ", "%20"),
			"description": "Issues labelled " + name,
		}
	}
	repo := "https://api.github.com/repos/octo-org/hello-world"
	issue := map[string]any{
		"url": repo + "/issues/1347", "repository_url": repo, "labels_url": repo + "/issues/1347/labels{/name}",
		"comments_url": repo + "/issues/1347/comments", "events_url": repo + "/issues/1347/events",
		"html_url": "https://github.com/octo-org/hello-world/issues/1347", "id": 1, "node_id": "MDU6SXNzdWUx",
		"number": 1347, "title": "Found a bug in the link preview renderer",
		"user":   user("octocat", 1),
		"labels": []any{label(208045946, "bug", "d73a4a"), label(208045947, "good first issue", "7057ff"), label(208045948, "help wanted", "008672")},
		"state":  "open", "locked": false,
		"assignee": user("hubot", 2), "assignees": []any{user("hubot", 2)},
		"milestone": map[string]any{
			"url": repo + "/milestones/1", "id": 1002604, "number": 1, "state": "open", "title": "v1.0",
			"description": "Tracking milestone for version 1.0", "creator": user("monalisa", 3),
			"open_issues": 4, "closed_issues": 8, "created_at": "2024-02-10T02:39:17Z", "due_on": "2024-10-09T23:39:01Z",
		},
		"comments": 4, "created_at": "2024-04-22T13:33:48Z", "updated_at": "2024-04-22T13:33:48.123Z", "closed_at": nil,
		"author_association": "COLLABORATOR",
		"body": "I'm having a problem with this.\n\nSteps to reproduce:\n1. Paste a link\n2. Watch the preview spin forever\n\n" +
			strings.Repeat("Expected: the preview shows the title, the state and the labels. ", 8),
		"reactions":    map[string]any{"url": repo + "/issues/1347/reactions", "total_count": 3, "+1": 2, "-1": 0, "laugh": 0, "hooray": 1},
		"timeline_url": repo + "/issues/1347/timeline", "state_reason": nil,
	}
	b, err := json.Marshal(issue)
	require.NoError(tb, err)
	require.InDelta(tb, 6000, len(b), 1000, "the benchmark body should stay about 6 KB")
	return b
}

// benchProvider starts a loopback fake upstream serving the issue body and
// builds the bench provider against it. calls counts upstream requests.
func benchProvider(b *testing.B) (p *provider.Provider, calls *atomic.Int64) {
	b.Helper()
	body := benchIssueJSON(b)
	calls = new(atomic.Int64)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/repos/octo-org/hello-world/issues/1347" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(up.Close)

	yml := strings.ReplaceAll(benchConfig, "UPSTREAM", up.URL)
	cfg, errs := config.Parse("bench.yaml", []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(b, errs.HasErrors(), "%v", errs)
	// The providers report to metrics, as in serve.
	reg, berrs := provider.Build(cfg, provider.Options{Observer: metrics.New()})
	require.False(b, berrs.HasErrors(), "%v", berrs)
	b.Cleanup(reg.Close)
	p, ok := reg.Get("bench")
	require.True(b, ok)

	// One unfurl up front proves the configuration maps every attribute,
	// so the benchmarks time the full path and not an error operation.
	r := p.Unfurl(b.Context(), benchURI, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	require.Nil(b, r.Error, string(r.Body))
	require.Len(b, r.Attributes, 8, string(r.Body)) // 7 configured + dev
	return p, calls
}

// BenchmarkMatch is the URI check (TH-28) plus the regex match and group
// extraction that every unfurl starts with.
func BenchmarkMatch(b *testing.B) {
	p, _ := benchProvider(b)
	b.ReportAllocs()
	for b.Loop() {
		m, err := p.Match(benchURI)
		if err != nil || m.Groups["number"] != "1347" {
			b.Fatal(m, err)
		}
	}
}

// BenchmarkUnfurlWarm is a result-cache hit: what Notion's repeated calls
// for one link cost.
func BenchmarkUnfurlWarm(b *testing.B) {
	p, calls := benchProvider(b)
	ctx := b.Context()
	p.Unfurl(ctx, benchURI, provider.Credential{}, provider.UnfurlOptions{})
	before := calls.Load()
	b.ReportAllocs()
	for b.Loop() {
		r := p.Unfurl(ctx, benchURI, provider.Credential{}, provider.UnfurlOptions{})
		if !r.Cached || r.Error != nil {
			b.Fatalf("cached=%v body=%s", r.Cached, r.Body)
		}
	}
	require.Equal(b, before, calls.Load(), "a warm unfurl must not reach the upstream")
}

// BenchmarkRender is match, mapping and encoding on a canned upstream
// body, without the network: the result cache is dropped before each
// unfurl (Forget), so every iteration maps and encodes again, while the
// upstream response cache serves the body. The unexported render step
// cannot be called from this external test package, so this is the
// closest isolation of it; the upstream-cache lookup and the JSON parse
// check of the body are included.
func BenchmarkRender(b *testing.B) {
	p, calls := benchProvider(b)
	ctx := b.Context()
	p.Unfurl(ctx, benchURI, provider.Credential{}, provider.UnfurlOptions{}) // fills the upstream cache
	before := calls.Load()
	b.ReportAllocs()
	for b.Loop() {
		p.Forget()
		r := p.Unfurl(ctx, benchURI, provider.Credential{}, provider.UnfurlOptions{})
		if r.Cached || r.Error != nil {
			b.Fatalf("cached=%v body=%s", r.Cached, r.Body)
		}
	}
	require.Equal(b, before, calls.Load(), "render must be served by the upstream cache")
}

// BenchmarkUnfurlCold skips both caches: every iteration makes one
// loopback HTTP request to the fake upstream, then maps and encodes.
func BenchmarkUnfurlCold(b *testing.B) {
	p, calls := benchProvider(b)
	ctx := b.Context()
	before := calls.Load()
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		r := p.Unfurl(ctx, benchURI, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
		if r.Error != nil {
			b.Fatalf("body=%s", r.Body)
		}
		n++
	}
	require.Equal(b, before+n, calls.Load(), "every cold unfurl must reach the upstream once")
}
