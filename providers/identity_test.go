package providers_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

// seenRequest is what the fake upstream received, copied out of the
// handler.
type seenRequest struct {
	method, path string
	query        string
	header       http.Header
	body         string
}

// fakeIdentity starts a loopback upstream that answers every request with
// status and body, and reports each request on the returned channel.
func fakeIdentity(t *testing.T, status int, body string) (*httptest.Server, <-chan seenRequest) {
	t.Helper()
	seen := make(chan seenRequest, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- seenRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// buildAt compiles one built-in provider with its upstream moved to
// fakeURL: the base URL keeps its path (GitLab's /api/v4), and loopback is
// allowed for this copy only, as the fixture runner does.
func buildAt(t *testing.T, name, fakeURL string) *provider.Provider {
	t.Helper()
	return buildAtEnv(t, name, fakeURL, providers.PlaceholderEnv())
}

// buildAtEnv is buildAt with env as the whole environment.
func buildAtEnv(t *testing.T, name, fakeURL string, env map[string]string) *provider.Provider {
	t.Helper()
	cfg, errs := parseBuiltinEnv(t, name, env)
	require.False(t, errs.HasErrors(), "%v", errs)
	fake, err := url.Parse(fakeURL)
	require.NoError(t, err)
	u := &cfg.Providers[0].Upstream
	base, err := url.Parse(u.BaseURL)
	require.NoError(t, err)
	base.Scheme, base.Host = fake.Scheme, fake.Host
	u.BaseURL = base.String()
	u.AllowedHosts = []string{fake.Host}
	u.AllowPrivateNetworks = true
	comp, berrs := compiled.Compile(cfg, compiled.Options{})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)
	p, ok := reg.Get(name)
	require.True(t, ok)
	return p
}

// atlassianFields are what a user enters on the Jira, Confluence and
// Bitbucket key form.
var atlassianFields = map[string]string{"email": "mia@example.com", "token": "ATATT3xFfGF0"}

// TestBuiltinIdentity runs the identity request of every built-in provider
// with per-user sign-in against a canned answer of its real API (issue 3
// item 2): the credential travels in the header and form the upstream
// expects, and the key and name expressions give Notion's
// external_account (protocol 4.2): a stable id, never the login or the
// secret (TH-14). Ids are large enough that a float rendering would show
// an exponent.
func TestBuiltinIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		provider string
		token    string
		// fields, when set, is the credential instead of token: the
		// values of a form that asks for several.
		fields map[string]string
		// How the request must look.
		method, path string
		authHeader   string // the header carrying the credential
		authValue    string // its exact value
		noHeader     string // a header that must not carry it
		body         string // JSON request body; "" for none
		// The canned answer and what it must give.
		response          string
		wantKey, wantName string
	}{
		{
			name: "github-oauth user", provider: "github-oauth", token: "gho_16C7e42F292c6912E7710c838347Ae178B4a",
			method: http.MethodGet, path: "/user",
			authHeader: "Authorization", authValue: "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a",
			response: `{"login": "octocat", "id": 159876543, "node_id": "MDQ6VXNlcjE=", "name": "The Octocat", "type": "User"}`,
			wantKey:  "github:159876543", wantName: "octocat",
		},
		{
			name: "gitlab user", provider: "gitlab", token: "glpat-xxxxxxxxxxxxxxxxxxxx",
			method: http.MethodGet, path: "/api/v4/user",
			authHeader: "Private-Token", authValue: "glpat-xxxxxxxxxxxxxxxxxxxx", noHeader: "Authorization",
			response: `{"id": 12345678, "username": "jdoe", "name": "Jane Doe", "state": "active", "avatar_url": "https://secure.gravatar.com/avatar/x"}`,
			wantKey:  "gitlab:12345678", wantName: "jdoe",
		},
		{
			name: "linear viewer", provider: "linear", token: "lin_api_0123456789abcdefghij",
			method: http.MethodPost, path: "/graphql",
			authHeader: "Authorization", authValue: "lin_api_0123456789abcdefghij", noHeader: "Private-Token",
			body:     `{"query": "query { viewer { id name email } }"}`,
			response: `{"data": {"viewer": {"id": "2f0b8c4e-5a1d-4c3b-9e7f-0a1b2c3d4e5f", "name": "Jane Doe", "email": "jane@acme.example"}}}`,
			wantKey:  "linear:2f0b8c4e-5a1d-4c3b-9e7f-0a1b2c3d4e5f", wantName: "Jane Doe",
		},
		{
			name: "linear viewer without a name shows the email", provider: "linear", token: "lin_api_0123456789abcdefghij",
			method: http.MethodPost, path: "/graphql",
			authHeader: "Authorization", authValue: "lin_api_0123456789abcdefghij",
			body:     `{"query": "query { viewer { id name email } }"}`,
			response: `{"data": {"viewer": {"id": "2f0b8c4e-5a1d-4c3b-9e7f-0a1b2c3d4e5f", "name": null, "email": "jane@acme.example"}}}`,
			wantKey:  "linear:2f0b8c4e-5a1d-4c3b-9e7f-0a1b2c3d4e5f", wantName: "jane@acme.example",
		},
		{
			name: "shortcut member", provider: "shortcut", token: "5f1c2a9b-0000-4e8b-9c61-2f5d8e0a1b37",
			method: http.MethodGet, path: "/api/v3/member",
			authHeader: "Shortcut-Token", authValue: "5f1c2a9b-0000-4e8b-9c61-2f5d8e0a1b37", noHeader: "Authorization",
			response: `{"id": "12345678-9012-3456-7890-123456789012", "mention_name": "jdoe", "name": "Jane Doe", "workspace2": {"url_slug": "acme", "estimate_scale": [0, 1, 2, 4, 8]}}`,
			wantKey:  "shortcut:12345678-9012-3456-7890-123456789012", wantName: "Jane Doe",
		},
		{
			// PagerDuty's documented form, "Token token=<key>", written
			// with upstream.auth.value.
			name: "pagerduty user", provider: "pagerduty", token: "y_NbAkKc66ryYTWUXYEu",
			method: http.MethodGet, path: "/users/me",
			authHeader: "Authorization", authValue: "Token token=y_NbAkKc66ryYTWUXYEu",
			response: `{"user": {"id": "PXPGF42", "type": "user", "summary": "Earline Greenholt", "name": "Earline Greenholt", "email": "125.greenholt.earline@graham.name", "time_zone": "America/Lima", "role": "admin"}}`,
			wantKey:  "pagerduty:PXPGF42", wantName: "Earline Greenholt",
		},
		{
			name: "clickup user", provider: "clickup", token: "pk_4753994_EXP7MPOJ7XQM5UJDV2M45MPF0YHH5YHO",
			method: http.MethodGet, path: "/api/v2/user",
			authHeader: "Authorization", authValue: "pk_4753994_EXP7MPOJ7XQM5UJDV2M45MPF0YHH5YHO",
			response: `{"user": {"id": 123456789012, "username": "John Doe", "email": "johndoe@gmail.com", "color": "#000000", "profilePicture": "https://attachments.clickup.com/profilePictures/123_abc.jpg", "initials": "JD"}}`,
			wantKey:  "clickup:123456789012", wantName: "John Doe",
		},
		{
			// Atlassian API tokens go as HTTP Basic: the form asks for
			// the e-mail and the token, and the header is
			// Basic base64("mia@example.com:ATATT3xFfGF0").
			name: "jira myself", provider: "jira", fields: atlassianFields,
			method: http.MethodGet, path: "/rest/api/2/myself",
			authHeader: "Authorization", authValue: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
			response: `{"self": "https://your-domain.atlassian.net/rest/api/2/user?accountId=5b10a2844c20165700ede21g", "accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian", "emailAddress": "mia@example.com", "displayName": "Mia Krystof", "active": true}`,
			wantKey:  "jira:5b10a2844c20165700ede21g", wantName: "Mia Krystof",
		},
		{
			// Connected before the form had two fields: the user pasted
			// the Base64 of "email:token", which is sent as it was.
			name: "jira key pasted as one value", provider: "jira", token: "bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
			method: http.MethodGet, path: "/rest/api/2/myself",
			authHeader: "Authorization", authValue: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
			response: `{"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"}`,
			wantKey:  "jira:5b10a2844c20165700ede21g", wantName: "Mia Krystof",
		},
		{
			name: "confluence current user", provider: "confluence", fields: atlassianFields,
			method: http.MethodGet, path: "/wiki/rest/api/user/current",
			authHeader: "Authorization", authValue: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
			response: `{"type": "known", "accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian", "email": "emma@example.com", "publicName": "emma", "displayName": "Emma Richards"}`,
			wantKey:  "confluence:5b10ac8d82e05b22cc7d4ef5", wantName: "Emma Richards",
		},
		{
			name: "bitbucket user", provider: "bitbucket", fields: atlassianFields,
			method: http.MethodGet, path: "/2.0/user",
			authHeader: "Authorization", authValue: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA==",
			response: `{"type": "user", "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}", "account_id": "5b10ac8d82e05b22cc7d4ef5", "nickname": "emmar", "display_name": "Emma Richards"}`,
			wantKey:  "bitbucket:{d301aafa-d676-4ee0-88be-962be7417567}", wantName: "Emma Richards",
		},
		{
			name: "asana me", provider: "asana", token: "2/1204567890123456/1209876543210987:0123456789abcdef",
			method: http.MethodGet, path: "/api/1.0/users/me",
			authHeader: "Authorization", authValue: "Bearer 2/1204567890123456/1209876543210987:0123456789abcdef",
			response: `{"data": {"gid": "1204567890123456", "resource_type": "user", "name": "Greg Sanchez", "email": "gsanchez@example.com"}}`,
			wantKey:  "asana:1204567890123456", wantName: "Greg Sanchez",
		},
		{
			name: "zendesk me", provider: "zendesk", token: "zendesk-oauth-access-token",
			method: http.MethodGet, path: "/api/v2/users/me",
			authHeader: "Authorization", authValue: "Bearer zendesk-oauth-access-token",
			response: `{"user": {"id": 3543600012345, "name": "Johnny Agent", "email": "johnny@example.com", "role": "agent"}}`,
			wantKey:  "zendesk:3543600012345", wantName: "Johnny Agent",
		},
		{
			// GET /v1/me (figma/rest-api-spec GetMeResponse: User + email).
			name: "figma me", provider: "figma", token: "figd_0123456789abcdefghijklmnopqrstuvwxyz",
			method: http.MethodGet, path: "/v1/me",
			authHeader: "X-Figma-Token", authValue: "figd_0123456789abcdefghijklmnopqrstuvwxyz", noHeader: "Authorization",
			response: `{"id": "1234567890123456789", "handle": "Ada Example", "img_url": "https://s3-alpha.figma.com/profile/6f2d1c4e", "email": "ada@example.com"}`,
			wantKey:  "figma:1234567890123456789", wantName: "Ada Example",
		},
		{
			// GET /api/0/ names the token's user (what sentry-cli's
			// "info" shows).
			name: "sentry user", provider: "sentry", token: "sntryu_0123456789abcdef0123456789abcdef",
			method: http.MethodGet, path: "/api/0/",
			authHeader: "Authorization", authValue: "Bearer sntryu_0123456789abcdef0123456789abcdef",
			response: `{"version": "0", "auth": {"scopes": ["event:read", "org:read"]}, "user": {"id": "1234567", "name": "John Doe", "username": "john.doe@example.com", "email": "john.doe@example.com"}}`,
			wantKey:  "sentry:1234567", wantName: "John Doe",
		},
		{
			name: "sentry user without a name shows the email", provider: "sentry", token: "sntryu_0123456789abcdef0123456789abcdef",
			method: http.MethodGet, path: "/api/0/",
			authHeader: "Authorization", authValue: "Bearer sntryu_0123456789abcdef0123456789abcdef",
			response: `{"version": "0", "auth": {"scopes": ["event:read"]}, "user": {"id": "1234567", "name": null, "email": "john.doe@example.com"}}`,
			wantKey:  "sentry:1234567", wantName: "john.doe@example.com",
		},
		{
			// Trello wants the operator's app key and the user's token in
			// one header (PlaceholderEnv's app key here); GET
			// /1/members/me answers the token's member.
			name: "trello me", provider: "trello", fields: map[string]string{"token": "ATTA0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
			method: http.MethodGet, path: "/1/members/me",
			authHeader: "Authorization", authValue: `OAuth oauth_consumer_key="placeholder-trello-app-key", oauth_token="ATTA0f1e2d3c4b5a69788796a5b4c3d2e1f0"`,
			response: `{"id": "5abbe4b7ddc1b351ef961411", "username": "bentleycook", "fullName": "Bentley Cook", "initials": "BC"}`,
			wantKey:  "trello:5abbe4b7ddc1b351ef961411", wantName: "Bentley Cook",
		},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.provider] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeIdentity(t, http.StatusOK, tc.response)
			p := buildAt(t, tc.provider, srv.URL)
			require.True(t, p.HasIdentity())

			cred := provider.Credential{Key: "identify:test", Token: config.Secret(tc.token)}
			secret := tc.token
			if tc.fields != nil {
				cred = provider.Credential{Key: "identify:test", Fields: map[string]config.Secret{}}
				for k, v := range tc.fields {
					cred.Fields[k] = config.Secret(v)
				}
				secret = tc.fields["token"]
				// The form asks for exactly these fields, the secret
				// ones hidden.
				var asked []string
				for _, f := range p.Config.Upstream.Auth.APIKey.Fields {
					asked = append(asked, f.Name)
					assert.Equal(t, f.Name == "token", f.Type == config.FieldSecret, f.Name)
				}
				assert.ElementsMatch(t, slices.Collect(maps.Keys(tc.fields)), asked)
			}
			acct, err := p.Identify(t.Context(), cred)
			require.NoError(t, err)
			assert.Equal(t, tc.wantKey, acct.Key)
			assert.Equal(t, tc.wantName, acct.Name)
			assert.NotContains(t, acct.Key+acct.Name, secret, "the credential never becomes the account (TH-14)")

			require.Len(t, seen, 1, "exactly one identity request")
			r := <-seen
			assert.Equal(t, tc.method, r.method)
			assert.Equal(t, tc.path, r.path)
			assert.Equal(t, tc.authValue, r.header.Get(tc.authHeader))
			if tc.noHeader != "" {
				assert.Empty(t, r.header.Get(tc.noHeader), "the credential goes in %s only", tc.authHeader)
			}
			if tc.body == "" {
				assert.Empty(t, r.body)
			} else {
				assert.JSONEq(t, tc.body, r.body)
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			}
		})
	}
	for _, n := range providers.Names() {
		cfg, errs := parseBuiltin(t, n)
		require.False(t, errs.HasErrors(), "%v", errs)
		if cfg.Providers[0].Upstream.Auth.Type != config.AuthNone {
			assert.True(t, covered[n], "builtin %s signs users in but has no identity case here", n)
		}
	}
}

// TestBuiltinIdentityRejects: a key or token the upstream refuses (401,
// or 403 as Figma answers) is reported as ErrCredentialRejected, which the API-key form turns into
// "did not accept this key" (engine/connect), and gives no account.
func TestBuiltinIdentityRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider, body string
		status         int
	}{
		{provider: "github-oauth", body: `{"message": "Bad credentials", "status": "401"}`},
		{provider: "gitlab", body: `{"message": "401 Unauthorized"}`},
		{provider: "linear", body: `{"errors": [{"message": "Authentication required, not authenticated"}]}`},
		{provider: "shortcut", body: `{"message": "Unauthorized"}`},
		{provider: "pagerduty", body: `{"error": {"message": "Unauthorized", "code": 2006}}`},
		{provider: "clickup", body: `{"err": "Token invalid", "ECODE": "OAUTH_025"}`},
		{provider: "jira", body: `{"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}}`},
		{provider: "confluence", body: `{"statusCode": 401, "message": "Current user not permitted to use Confluence"}`},
		{provider: "bitbucket", body: `{"type": "error", "error": {"message": "Unauthorized"}}`},
		{provider: "asana", body: `{"errors": [{"message": "Not Authorized"}]}`},
		{provider: "zendesk", body: `{"error": "invalid_token", "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."}`},
		{provider: "sentry", body: `{"detail": "Invalid token"}`},
		{provider: "figma", body: `{"status": 403, "err": "Invalid token"}`, status: http.StatusForbidden},
		// errors.statuses reads an unfurl's 401 as "not found", never the
		// identity request's.
		{provider: "trello", body: `"invalid token"`},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			status := tc.status
			if status == 0 {
				status = http.StatusUnauthorized
			}
			srv, _ := fakeIdentity(t, status, tc.body)
			p := buildAt(t, tc.provider, srv.URL)
			acct, err := p.Identify(t.Context(), provider.Credential{Key: "identify:test", Token: "wrong"})
			require.ErrorIs(t, err, provider.ErrCredentialRejected)
			assert.Zero(t, acct)
		})
	}
}

// TestBuiltinIdentityNeedsAnAccount: an answer without the account id
// (Linear's GraphQL says 200 with "data": null) is no account, so the key
// is not accepted rather than connected under an empty or shared key
// (TH-14).
func TestBuiltinIdentityNeedsAnAccount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ provider, body string }{
		{provider: "github-oauth", body: `{"login": "octocat"}`},
		{provider: "gitlab", body: `{"username": "jdoe"}`},
		{provider: "linear", body: `{"data": null, "errors": [{"message": "Authentication required"}]}`},
		{provider: "shortcut", body: `{"mention_name": "jdoe", "name": "Jane Doe"}`},
		{provider: "pagerduty", body: `{"user": {"name": "Earline Greenholt"}}`},
		{provider: "clickup", body: `{"user": {"username": "John Doe"}}`},
		{provider: "jira", body: `{"displayName": "Mia Krystof"}`},
		// Confluence and Zendesk answer an anonymous caller with a user
		// that has no id.
		{provider: "confluence", body: `{"type": "anonymous", "displayName": "Anonymous", "publicName": "Anonymous"}`},
		{provider: "bitbucket", body: `{"type": "user", "display_name": "Emma Richards"}`},
		{provider: "asana", body: `{"data": {"name": "Greg Sanchez"}}`},
		{provider: "zendesk", body: `{"user": {"id": null, "name": "Anonymous user", "role": "end-user"}}`},
		{provider: "figma", body: `{"handle": "Ada Example"}`},
		// An organization token (sntrys_...) authenticates but belongs to
		// no user: it must not connect as an empty or shared account.
		{provider: "sentry", body: `{"version": "0", "auth": {"scopes": ["org:ci"]}, "user": null}`},
		{provider: "trello", body: `{"username": "bentleycook"}`},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeIdentity(t, http.StatusOK, tc.body)
			p := buildAt(t, tc.provider, srv.URL)
			acct, err := p.Identify(t.Context(), provider.Credential{Key: "identify:test", Token: "some-token"})
			require.Error(t, err)
			assert.NotErrorIs(t, err, provider.ErrCredentialRejected)
			assert.Zero(t, acct)
		})
	}
}

// TestGitHubHasNoIdentity: builtin:github signs nobody in, and has no
// identity request on purpose. With one, connecting without GITHUB_TOKEN
// would ask GET /user anonymously, get 401 and fail, where today every
// Notion user shares one public connection.
func TestGitHubHasNoIdentity(t *testing.T) {
	t.Parallel()
	srv, seen := fakeIdentity(t, http.StatusOK, `{}`)
	p := buildAt(t, "github", srv.URL)
	assert.Equal(t, config.AuthNone, p.AuthType())
	assert.False(t, p.HasIdentity())
	assert.Empty(t, seen)
}

// TestTrelloUnfurlCredential: a card unfurl carries the same OAuth header
// as the identity request, and Trello's 401 for a card on a board the
// user cannot see is "not found", so one such link does not ask the user
// to reconnect.
func TestTrelloUnfurlCredential(t *testing.T) {
	t.Parallel()
	cred := provider.Credential{Key: "conn-1", Fields: map[string]config.Secret{"token": "ATTA0f1e2d3c4b5a69788796a5b4c3d2e1f0"}}
	want := `OAuth oauth_consumer_key="placeholder-trello-app-key", oauth_token="ATTA0f1e2d3c4b5a69788796a5b4c3d2e1f0"`

	srv, seen := fakeIdentity(t, http.StatusOK, `{"name": "👋 What? Why? How?", "list": {"name": "Info"}}`)
	p := buildAt(t, "trello", srv.URL)
	r := p.Unfurl(t.Context(), "https://trello.com/c/H0TZyzbK/4-what-why-how", cred, provider.UnfurlOptions{NoCache: true})
	require.Nil(t, r.Error, string(r.Body))
	req := <-seen
	assert.Equal(t, "/1/cards/H0TZyzbK", req.path)
	assert.Equal(t, want, req.header.Get("Authorization"))

	srv, _ = fakeIdentity(t, http.StatusUnauthorized, `"unauthorized card permission requested"`)
	p = buildAt(t, "trello", srv.URL)
	r = p.Unfurl(t.Context(), "https://trello.com/c/Xq9PcK2a", cred, provider.UnfurlOptions{NoCache: true})
	require.NotNil(t, r.Error)
	assert.Equal(t, http.StatusNotFound, r.Error.Status)
}
