package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/provider"
)

// withKeyFields gives the keyed provider an Atlassian-style form: an
// e-mail and an API token, sent as HTTP Basic of "email:token".
func withKeyFields(yml string) string {
	return strings.Replace(yml,
		`        api_key: {help_text: "Paste a personal API key.", help_url: "https://keyed.example.com/settings/keys"}`,
		`        prefix: Basic
        value: '"Basic " + base64(credential.email + ":" + credential.token)'
        api_key:
          help_text: "Your e-mail address and an API token."
          fields: [{name: email, label: E-mail, type: email}, {name: token, label: API token}]`, 1)
}

// TestAPIKeyFieldsFlow connects a provider whose form asks for two
// fields, through the real server, fake upstream and fake Notion: each
// field is checked, a refused pair keeps the e-mail but never echoes the
// token, the identity request and the unfurls carry Basic
// base64(email:token), and neither the token nor the header value is
// found in clear in the database file (TH-41) or the logs (TH-49).
func TestAPIKeyFieldsFlow(t *testing.T) {
	const (
		email = "mia@example.com"
		token = "ATATT3xFfGF0-token-0123456789"
	)
	header := "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+token))
	e := newFlowEnv(t, withKeyFields)
	e.up.AddKey(header) // the fake takes the whole header value as the key
	e.notion.AddCode("nc-fields", notiontest.TokenResponseJSON{WorkspaceID: "ws-f"})

	v := url.Values{"code": {"nc-fields"}, "client_id": {"keyed"}, "redirect_uri": {notionRedirect}, "response_type": {"code"}, "state": {"st-f"}}
	r := e.get(e.srv.URL + "/providers/keyed/authorize?" + v.Encode())
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	r = e.get(r.Header.Get("Location"))
	page := body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	assert.Contains(t, page, `name="field_email" type="email"`)
	assert.Contains(t, page, `name="field_token" type="password"`)
	assert.NotContains(t, page, `name="api_key"`)
	csrf := csrfField.FindStringSubmatch(page)[1]

	submit := func(em, tok string) *http.Response {
		return e.postForm("/providers/keyed/api-key", url.Values{"csrf": {csrf}, "decision": {"allow"}, "field_email": {em}, "field_token": {tok}})
	}
	for _, tc := range []struct{ name, email, token, want string }{
		{name: "missing token", email: email, token: " ", want: "Fill in API token."},
		{name: "not an e-mail", email: "mia", token: "wrong-token", want: "E-mail does not look like an e-mail address."},
		{name: "refused pair", email: email, token: "wrong-token", want: "did not accept this key"},
	} {
		r = submit(tc.email, tc.token)
		page = body(t, r)
		assert.Equal(t, http.StatusBadRequest, r.StatusCode, tc.name)
		assert.Contains(t, page, tc.want, tc.name)
		assert.Contains(t, page, `value="`+tc.email+`"`, "%s: the e-mail is kept", tc.name)
		assert.NotContains(t, page, "wrong-token", "%s: the token is never echoed", tc.name)
	}
	e.storedNothing(t)

	r = submit(email, token)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
	assert.Equal(t, header, lastAuth(e.up), "the identity request carries Basic base64(email:token)")
	r = e.get(r.Header.Get("Location"))
	page = body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	assert.Contains(t, page, "octo-user")
	r = e.postForm("/providers/keyed/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
	require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
	code := mustQuery(t, r.Header.Get("Location")).Get("code")
	require.NotEmpty(t, code)

	// Notion redeems our code and unfurls as the user.
	access := e.keyedToken(code)
	st, out := keyedUnfurl(t, e.srv.URL, access)
	require.Equal(t, http.StatusOK, st, out)
	assert.Contains(t, out, "Fix the flux capacitor")
	assert.Equal(t, header, lastAuth(e.up), "the unfurl carries the same header")

	secrets := []string{token, header, strings.TrimPrefix(header, "Basic "), "wrong-token"}
	logs := e.logs.String()
	for _, s := range secrets {
		assert.NotContains(t, logs, s)
	}
	require.NoError(t, e.st.Close())
	raw, err := os.ReadFile(e.dbPath)
	require.NoError(t, err)
	for _, s := range append(secrets, email) {
		assert.False(t, bytes.Contains(raw, []byte(s)), "database file holds %q in clear", s)
	}
}

// keyedToken is Notion redeeming our code for the keyed provider (R4).
func (e *flowEnv) keyedToken(code string) string {
	e.t.Helper()
	resp, err := http.PostForm(e.srv.URL+"/providers/keyed/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect},
		"client_id": {"keyed"}, "client_secret": {notionFacingSecret + "-keyed"},
	})
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var tok map[string]any
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(e.t, http.StatusOK, resp.StatusCode, tok)
	access, _ := tok["access_token"].(string)
	require.NotEmpty(e.t, access)
	return access
}

// keyedUnfurl is Notion unfurling a keyed link at base (R5).
func keyedUnfurl(t *testing.T, base, access string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/providers/keyed/unfurl", strings.NewReader(`{"uri":"https://keyed.example.com/items/1"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, body(t, resp)
}

// TestAPIKeyFieldsKeepSingleKeys: a key connected as one value (as Jira
// users pasted the Base64 of email:token) keeps unfurling after the
// provider's form asks for two fields: the sealed single key is opened
// as before and sent as "<prefix> <key>".
func TestAPIKeyFieldsKeepSingleKeys(t *testing.T) {
	const legacy = "bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="
	e := newFlowEnv(t)
	e.up.AddKey(legacy)            // Bearer <key> today
	e.up.AddKey("Basic " + legacy) // Basic <key> after the change
	e.notion.AddCode("nc-old", notiontest.TokenResponseJSON{WorkspaceID: "ws-o"})
	v := url.Values{"code": {"nc-old"}, "client_id": {"keyed"}, "redirect_uri": {notionRedirect}, "response_type": {"code"}, "state": {"st-o"}}
	r := e.get(e.srv.URL + "/providers/keyed/authorize?" + v.Encode())
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	r = e.get(r.Header.Get("Location"))
	csrf := csrfField.FindStringSubmatch(body(t, r))[1]
	r = e.postForm("/providers/keyed/api-key", url.Values{"csrf": {csrf}, "decision": {"allow"}, "api_key": {legacy}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
	r = e.postForm("/providers/keyed/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
	require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
	access := e.keyedToken(mustQuery(t, r.Header.Get("Location")).Get("code"))

	// The new configuration over the same database.
	yml := strings.NewReplacer("PUBLIC", e.srv.URL, "KEYS", e.cfg.Server.SecretKeys.Reveal(), "DATA", t.TempDir(),
		"NOTION", e.notion.URL(), "UP", e.up.URL()).Replace(flowConfig)
	cfg, errs := config.Parse("flow.yaml", []byte(withKeyFields(yml)), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	require.Len(t, cfg.Providers[1].Upstream.Auth.APIKey.Fields, 2)
	reg, berrs := provider.Build(cfg, provider.Options{Logger: e.logger, Now: e.clock.Now})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	a, err := app.New(app.Options{Config: cfg, Registry: reg, Store: e.st, Logger: e.logger, Now: e.clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)

	st, out := keyedUnfurl(t, srv.URL, access)
	require.Equal(t, http.StatusOK, st, out)
	assert.Contains(t, out, "Fix the flux capacitor")
	assert.Equal(t, "Basic "+legacy, lastAuth(e.up))
}
