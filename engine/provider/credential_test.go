package provider_test

import (
	"encoding/json"
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

// credentialConfig is a provider whose auth block is AUTH; the upstream
// answers /me and /items/<id> with 401 when the id is 401 or the
// credential contains "refused", and 200 otherwise.
const credentialConfig = `
server: {mode: development}
providers:
  - name: acme
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      auth:
AUTH
        identity: {url: /me, key: identity.id, name: identity.name}
    errors:
      statuses: STATUSES
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: '/items/{id}'}]
        attributes: [{id: title, kind: title, path: title}]
`

// authUpstream records the Authorization header of every request.
type authUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *authUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, r.Header.Get("Authorization"))
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/401") || strings.Contains(r.Header.Get("Authorization"), "refused") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message": "invalid token"}`))
		return
	}
	_, _ = w.Write([]byte(`{"id": "u1", "name": "Mia", "title": "Item"}`))
}

func (u *authUpstream) last(t *testing.T) string {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	require.NotEmpty(t, u.seen, "no request reached the upstream")
	return u.seen[len(u.seen)-1]
}

// buildCredential builds credentialConfig with auth and statuses, and
// env as the whole environment.
func buildCredential(t *testing.T, auth, statuses string, env map[string]string) (*provider.Provider, *authUpstream) {
	t.Helper()
	up := &authUpstream{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	if statuses == "" {
		statuses = "{}"
	}
	src := strings.NewReplacer("UPSTREAM", srv.URL, "AUTH", auth, "STATUSES", statuses).Replace(credentialConfig)
	cfg, errs := config.Parse("credential.yaml", []byte(src), config.LoadOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	p, ok := reg.Get("acme")
	require.True(t, ok)
	return p, up
}

const (
	basicAuth = `        type: api_key
        prefix: Basic
        value: '"Basic " + base64(credential.email + ":" + credential.token)'
        api_key:
          fields: [{name: email, type: email}, {name: token}]`
	trelloAuth = `        type: api_key
        value: '"OAuth oauth_consumer_key=\"" + secrets.app_key + "\", oauth_token=\"" + credential.token + "\""'
        secrets: {app_key: "${APP_KEY}"}
        api_key:
          fields: [{name: token}]`
)

// TestCredentialHeader: the header each credential shape puts on the
// wire, on unfurls and on the identity request alike; keys stored before
// a provider asked for several fields keep working (backward
// compatibility of sealed single keys).
func TestCredentialHeader(t *testing.T) {
	t.Parallel()
	fields := func(kv ...string) map[string]config.Secret {
		m := map[string]config.Secret{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = config.Secret(kv[i+1])
		}
		return m
	}
	tests := []struct {
		name string
		auth string
		cred provider.Credential
		want string
	}{
		{
			name: "email and token as HTTP Basic", auth: basicAuth,
			cred: provider.Credential{Key: "c1", Fields: fields("email", "mia@example.com", "token", "ATATT3xFfGF0")},
			want: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
		},
		{
			// A Jira key pasted as the Base64 of email:token before the
			// form asked for both: sent as it always was.
			name: "single key stored before the fields", auth: basicAuth,
			cred: provider.Credential{Key: "c1", Token: "bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="},
			want: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
		},
		{
			name: "operator app key and user token in one header", auth: trelloAuth,
			cred: provider.Credential{Key: "c1", Fields: fields("token", "ATTA1234")},
			want: `OAuth oauth_consumer_key="app-0123", oauth_token="ATTA1234"`,
		},
		{
			// `unfurld preview --token` gives one value: a one-field
			// form's field.
			name: "single value for a one-field form", auth: trelloAuth,
			cred: provider.Credential{Key: "c1", Token: "ATTA1234"},
			want: `OAuth oauth_consumer_key="app-0123", oauth_token="ATTA1234"`,
		},
		{
			name: "value over a single token", auth: "        type: api_key\n        value: '\"Token \" + credential.token'",
			cred: provider.Credential{Key: "c1", Token: "k-1"},
			want: "Token k-1",
		},
		{
			name: "one field without value is the key", auth: "        type: api_key\n        prefix: Bearer\n        api_key: {fields: [{name: pat}]}",
			cred: provider.Credential{Key: "c1", Fields: fields("pat", "p-1")},
			want: "Bearer p-1",
		},
		{
			name: "no value: prefix and key, as before", auth: "        type: api_key",
			cred: provider.Credential{Key: "c1", Token: "k-1"},
			want: "Bearer k-1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, up := buildCredential(t, tc.auth, "", map[string]string{"APP_KEY": "app-0123"})
			r := p.Unfurl(t.Context(), "https://acme.example/items/1", tc.cred, provider.UnfurlOptions{})
			require.Nil(t, r.Error, string(r.Body))
			assert.Equal(t, tc.want, up.last(t), "unfurl")

			acct, err := p.Identify(t.Context(), tc.cred)
			require.NoError(t, err)
			assert.Equal(t, "u1", acct.Key)
			assert.Equal(t, tc.want, up.last(t), "identity request")
		})
	}
}

// TestCredentialValueFailureHidesSecrets: an expression that fails at run
// time sends nothing and answers "try later"; what the operator sees
// names the expression, never the credential or the app key, even when
// the evaluation's own error quotes them.
func TestCredentialValueFailureHidesSecrets(t *testing.T) {
	t.Parallel()
	auth := `        type: api_key
        value: '"x" + secrets.app_key + string(int(credential.token))'
        secrets: {app_key: "${APP_KEY}"}`
	p, up := buildCredential(t, auth, "", map[string]string{"APP_KEY": "app-0123-secret"})
	r := p.Unfurl(t.Context(), "https://acme.example/items/1", provider.Credential{Key: "c1", Token: "tok-secret-42"}, provider.UnfurlOptions{Trace: true})
	require.NotNil(t, r.Error)
	assert.Equal(t, 502, r.Error.Status)
	require.NotNil(t, r.Failure)
	assert.Equal(t, provider.FailureRefused, r.Failure.Kind)
	assert.Contains(t, r.Failure.Err.Error(), "credential.yaml:10:16: providers.acme.upstream.auth.value gave no usable header value")
	out, err := json.Marshal(r)
	require.NoError(t, err)
	seen := string(out) + r.Failure.Err.Error()
	for _, secret := range []string{"tok-secret-42", "app-0123-secret"} {
		assert.NotContains(t, seen, secret)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	assert.Empty(t, up.seen, "nothing is sent without the header")
}

// TestCredentialFieldsWithoutValue: a credential of several fields,
// connected before the configuration dropped upstream.auth.value, is not
// sent at all rather than one field picked at random.
func TestCredentialFieldsWithoutValue(t *testing.T) {
	t.Parallel()
	p, up := buildCredential(t, "        type: api_key", "", nil)
	cred := provider.Credential{Key: "c1", Fields: map[string]config.Secret{"email": "mia@example.com", "token": "tok-secret-42"}}
	r := p.Unfurl(t.Context(), "https://acme.example/items/1", cred, provider.UnfurlOptions{})
	require.NotNil(t, r.Error)
	assert.Equal(t, 502, r.Error.Status)
	require.NotNil(t, r.Failure)
	assert.NotContains(t, r.Failure.Err.Error(), "tok-secret-42")
	up.mu.Lock()
	defer up.mu.Unlock()
	assert.Empty(t, up.seen)
}

// TestErrorStatuses: errors.statuses makes an unfurl's 401 "not found"
// (Trello answers 401 for a card the user cannot see), while the identity
// request's 401 still refuses the credential.
func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	cred := provider.Credential{Key: "c1", Token: "k-1"}
	for _, tc := range []struct {
		name, statuses string
		want           int
	}{
		{name: "default: reconnect", statuses: "", want: 401},
		{name: "401 means not found", statuses: "{401: not_found}", want: 404},
		{name: "401 means try later", statuses: "{401: try_later}", want: 503},
		{name: "other codes keep their meaning", statuses: "{403: not_found}", want: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _ := buildCredential(t, "        type: api_key", tc.statuses, nil)
			r := p.Unfurl(t.Context(), "https://acme.example/items/401", cred, provider.UnfurlOptions{})
			require.NotNil(t, r.Error)
			assert.Equal(t, tc.want, r.Error.Status)
		})
	}
	t.Run("identity 401 is still a refused key", func(t *testing.T) {
		t.Parallel()
		p, _ := buildCredential(t, "        type: api_key", "{401: not_found}", nil)
		refused := provider.Credential{Key: "c1", Token: "refused-key"}
		r := p.Unfurl(t.Context(), "https://acme.example/items/1", refused, provider.UnfurlOptions{})
		require.NotNil(t, r.Error)
		assert.Equal(t, 404, r.Error.Status, "the unfurl's 401")
		_, err := p.Identify(t.Context(), refused)
		require.ErrorIs(t, err, provider.ErrCredentialRejected)
	})
}
