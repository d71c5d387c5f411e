package providers_test

import (
	"maps"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

// TestBuiltinRequestsOnTheWire unfurls one link of the public-registry
// providers against a loopback fake and checks what reaches it: the fixed
// headers and query parameters their APIs require, with and without the
// optional environment. crates.io refuses requests without a User-Agent
// that names the application; the Stack Exchange key is a query parameter,
// and an empty "key=" would make the API refuse every request, so none is
// sent without the variable. No credential header is ever sent (TH-27).
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
