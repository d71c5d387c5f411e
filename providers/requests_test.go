package providers_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

// TestBuiltinRequestsOnTheWire unfurls one link of the anonymous public
// providers against a loopback fake and checks what reaches it: the fixed
// query parameters their APIs require, with and without the optional
// environment. The Stack Exchange key is a query parameter, and an empty
// "key=" would make the API refuse every request, so none is sent without
// the variable. No credential header is ever sent (TH-27).
func TestBuiltinRequestsOnTheWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, provider, uri string
		env                 map[string]string
		wantPath            string
		wantQuery           url.Values
		wantHeader          map[string]string
	}{
		{
			name: "stackoverflow without a key", provider: "stackoverflow", uri: "https://stackoverflow.com/questions/11227809/why",
			wantPath:  "/2.3/questions/11227809",
			wantQuery: url.Values{"site": {"stackoverflow"}, "filter": {"default"}},
		},
		{
			name: "stackoverflow with a key", provider: "stackoverflow", uri: "https://stackoverflow.com/q/11227809",
			env:       map[string]string{"STACKOVERFLOW_API_QUERY": "&key=U4DMV*8nvpm3EOpvf69Rxw(("},
			wantPath:  "/2.3/questions/11227809",
			wantQuery: url.Values{"site": {"stackoverflow"}, "filter": {"default"}, "key": {"U4DMV*8nvpm3EOpvf69Rxw(("}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(providers.PlaceholderEnv())
			if env == nil {
				env = map[string]string{}
			}
			maps.Copy(env, tc.env)
			srv, seen := fakeIdentity(t, http.StatusOK, `{}`)
			p := buildAtEnv(t, tc.provider, srv.URL, env)
			p.Unfurl(t.Context(), tc.uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
			require.NotEmpty(t, seen, "the unfurl reached the fake upstream")
			r := <-seen
			assert.Equal(t, http.MethodGet, r.method)
			assert.Equal(t, tc.wantPath, r.path)
			q, err := url.ParseQuery(r.query)
			require.NoError(t, err)
			assert.Equal(t, tc.wantQuery, q)
			for k, v := range tc.wantHeader {
				assert.Equal(t, v, r.header.Get(k), k)
			}
			assert.Empty(t, r.header.Get("Authorization"), "public APIs get no credential")
		})
	}
}

// TestGitHubDiscussionRequest: a discussion link becomes one GraphQL POST
// whose query carries the number (digits only, by the regex: TH-29) and
// whose variables carry owner and repository as JSON strings, sent with
// the service-wide token, which GitHub's GraphQL API requires.
func TestGitHubDiscussionRequest(t *testing.T) {
	t.Parallel()
	env := maps.Clone(providers.PlaceholderEnv())
	env["GITHUB_TOKEN"] = "ghp_service-wide-token"
	srv, seen := fakeIdentity(t, http.StatusOK, `{"data": {"repository": {"discussion": {"title": "t"}}}}`)
	p := buildAtEnv(t, "github", srv.URL, env)
	p.Unfurl(t.Context(), "https://github.com/octo-org/.github/discussions/90#discussioncomment-1", provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	require.NotEmpty(t, seen, "the unfurl reached the fake upstream")
	r := <-seen
	assert.Equal(t, http.MethodPost, r.method)
	assert.Equal(t, "/graphql", r.path)
	assert.Equal(t, "Bearer ghp_service-wide-token", r.header.Get("Authorization"))
	var body struct {
		Query     string            `json:"query"`
		Variables map[string]string `json:"variables"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Contains(t, body.Query, "discussion(number: 90)")
	assert.Equal(t, map[string]string{"owner": "octo-org", "name": ".github"}, body.Variables)
}
