package notion_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
)

var account = notion.ExternalAccount{Key: "github:12345", Name: "octocat@github"}

// TestExchangeCodeResponses checks lenient decoding of the token response
// (protocol 4.4, 10 #24, #25).
func TestExchangeCodeResponses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		resp notiontest.TokenResponseJSON
		want notion.TokenResponse // AccessToken and Owner are checked separately
	}{
		{
			name: "workspace owner, url icon, gumroad 2022 shape",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, BotID: "bot-1", WorkspaceID: "ws-1",
				WorkspaceName: "Gumroad", WorkspaceIcon: "https://s3.example/Avatar.png",
				Owner: json.RawMessage(`{"type":"workspace","workspace":true}`)},
			want: notion.TokenResponse{TokenType: "bearer", BotID: "bot-1", WorkspaceID: "ws-1",
				WorkspaceName: "Gumroad", WorkspaceIcon: "https://s3.example/Avatar.png", OwnerType: notion.OwnerWorkspace},
		},
		{
			name: "user owner, emoji icon, refresh token, request id",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, RefreshToken: "rt-1", WorkspaceIcon: "🍩",
				RequestID: "req-body",
				Owner: json.RawMessage(`{"type":"user","user":{"object":"user","id":"u-1","type":"person",` +
					`"name":"Ada","avatar_url":"https://x/a.png","person":{"email":"ada@example.com"}}}`)},
			want: notion.TokenResponse{TokenType: "bearer", RefreshToken: "rt-1", WorkspaceIcon: "🍩",
				OwnerType: notion.OwnerUser, OwnerUserID: "u-1", OwnerName: "Ada", RequestID: "req-body"},
		},
		{
			name: "legacy owner without type",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, Owner: json.RawMessage(`{"workspace":true}`)},
			want: notion.TokenResponse{TokenType: "bearer", OwnerType: notion.OwnerWorkspace},
		},
		{
			name: "partial user",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, Owner: json.RawMessage(`{"type":"user","user":{"object":"user","id":"u-2"}}`)},
			want: notion.TokenResponse{TokenType: "bearer", OwnerType: notion.OwnerUser, OwnerUserID: "u-2"},
		},
		{
			name: "user without type",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, Owner: json.RawMessage(`{"user":{"id":"u-3","name":"Bo"}}`)},
			want: notion.TokenResponse{TokenType: "bearer", OwnerType: notion.OwnerUser, OwnerUserID: "u-3", OwnerName: "Bo"},
		},
		{
			name: "owner of unknown shape is kept raw",
			resp: notiontest.TokenResponseJSON{AccessToken: testToken, Owner: json.RawMessage(`"someone"`)},
			want: notion.TokenResponse{TokenType: "bearer"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t)
			fake.AddCode(testCode, tc.resp)
			c := newClient(t, fake, notion.ClientOptions{})
			got, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
			require.NoError(t, err)
			assert.Equal(t, testToken, got.AccessToken.Reveal())
			assert.JSONEq(t, string(tc.resp.Owner), string(got.Owner))
			if tc.want.BotID == "" {
				tc.want.BotID = got.BotID // the fake's default
				tc.want.WorkspaceID = got.WorkspaceID
			}
			if tc.want.RequestID == "" {
				// No request_id in the body: the fake's header is used.
				assert.Regexp(t, `^00000000-0000-4000-8000-\d{12}$`, got.RequestID)
				tc.want.RequestID = got.RequestID
			}
			got.AccessToken, got.Owner = "", nil
			assert.Equal(t, tc.want, *got)
		})
	}
}

// TestExchangeCodeRaw feeds bodies the fake's builder cannot make:
// unexpected types, nulls, missing fields (protocol 4.4: parse leniently).
func TestExchangeCodeRaw(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		raw     string
		check   func(t *testing.T, got *notion.TokenResponse)
		wantErr string
	}{
		{
			name: "nulls and wrong types are left empty",
			raw: `{"access_token":"` + testToken + `","token_type":"bearer","refresh_token":null,"bot_id":42,` +
				`"workspace_id":"ws","workspace_name":null,"workspace_icon":null,"owner":null,"duplicated_template_id":null,"extra":{"a":1}}`,
			check: func(t *testing.T, got *notion.TokenResponse) {
				assert.Equal(t, testToken, got.AccessToken.Reveal())
				assert.True(t, got.RefreshToken.IsZero())
				assert.Empty(t, got.BotID)
				assert.Equal(t, "ws", got.WorkspaceID)
				assert.Nil(t, got.Owner)
				assert.Empty(t, got.OwnerType)
			},
		},
		{name: "no access token", raw: `{"token_type":"bearer"}`, wantErr: "no access_token"},
		{name: "not json", raw: `<html>`, wantErr: "decode token response"},
		{name: "array", raw: `[]`, wantErr: "decode token response"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t)
			fake.AddCode(testCode, notiontest.TokenResponseJSON{Raw: tc.raw})
			c := newClient(t, fake, notion.ClientOptions{})
			got, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.NotContains(t, err.Error(), testCode)
				return
			}
			require.NoError(t, err)
			tc.check(t, got)
		})
	}
}

// TestExchangeCodeRequest pins the exact request of protocol 4.1: Basic
// base64(id:secret), JSON body with grant_type, code and external_account,
// no redirect_uri, and the Notion-Version of protocol 4.3 (10 #19).
func TestExchangeCodeRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		version     string
		userAgent   string
		wantVersion string
		wantUA      string
	}{
		{name: "defaults", wantVersion: "2022-06-28", wantUA: "unfurld"},
		{name: "configured", version: "2026-03-11", userAgent: "unfurld/1.2", wantVersion: "2026-03-11", wantUA: "unfurld/1.2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t, notiontest.WithCredentials("int-id", "int:secret"))
			fake.AddCode(testCode, notiontest.TokenResponseJSON{})
			c := newClient(t, fake, notion.ClientOptions{TokenVersion: tc.version, UserAgent: tc.userAgent})
			creds := notion.BasicCredentials{ClientID: "int-id", ClientSecret: "int:secret"}
			_, err := c.ExchangeCode(t.Context(), creds, testCode, account)
			require.NoError(t, err)

			calls := fake.TokenCalls()
			require.Len(t, calls, 1)
			call := calls[0]
			assert.Equal(t, http.MethodPost, call.Method)
			assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("int-id:int:secret")), call.Header.Get("Authorization"))
			assert.Equal(t, "application/json", call.Header.Get("Content-Type"))
			assert.Equal(t, tc.wantVersion, call.Header.Get("Notion-Version"))
			assert.Equal(t, tc.wantUA, call.Header.Get("User-Agent"))
			assert.JSONEq(t, `{"grant_type":"authorization_code","code":"`+testCode+`",`+
				`"external_account":{"key":"github:12345","name":"octocat@github"}}`, string(call.Raw))
			assert.NotContains(t, call.Fields, "redirect_uri")
			require.NotNil(t, call.Body.ExternalAccount)
			assert.Equal(t, account, *call.Body.ExternalAccount)
			assert.Equal(t, http.StatusOK, call.Status)
		})
	}
}

// TestExchangeCodeErrors covers both of Notion's error shapes (protocol
// 4.5, 7.4, 10 #23), the fake's credential and code checks, F7's failing
// token endpoint, Retry-After on 429/529, and the body cap.
func TestExchangeCodeErrors(t *testing.T) {
	t.Parallel()
	type want struct {
		status     int
		code       string
		message    string
		requestID  string // "" means: any non-empty id
		retryAfter time.Duration
		additional string
		auth       bool
		rateLimit  bool
		retryable  bool
	}
	cases := []struct {
		name  string
		opts  []notiontest.Option
		setup func(fake *notiontest.Server)
		creds func(fake *notiontest.Server) notion.BasicCredentials
		want  want
	}{
		{
			name: "wrong secret: 401 invalid_client, OAuth style",
			creds: func(fake *notiontest.Server) notion.BasicCredentials {
				return notion.BasicCredentials{ClientID: fake.ClientID(), ClientSecret: "wrong"}
			},
			want: want{status: 401, code: "invalid_client", message: "Invalid client credentials.", auth: true},
		},
		{
			name: "wrong id",
			creds: func(fake *notiontest.Server) notion.BasicCredentials {
				return notion.BasicCredentials{ClientID: "other", ClientSecret: config.Secret(fake.ClientSecret())}
			},
			want: want{status: 401, code: "invalid_client", message: "Invalid client credentials.", auth: true},
		},
		{
			name:  "unknown code: 400 invalid_grant",
			setup: func(*notiontest.Server) {},
			want:  want{status: 400, code: "invalid_grant", message: "Invalid code: this code has been revoked."},
		},
		{
			name: "api style body",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 400, Body: `{"object":"error","status":400,"code":"validation_error",` +
					`"message":"body failed validation: body.code should be defined","request_id":"req-api","additional_data":{"x":1}}`})
			},
			want: want{status: 400, code: "validation_error", message: "body failed validation: body.code should be defined",
				requestID: "req-api", additional: `{"x":1}`},
		},
		{
			name: "oauth style body with request id",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 400, Body: `{"error":"invalid_request","error_description":"query failed validation","request_id":"req-oauth"}`})
			},
			want: want{status: 400, code: "invalid_request", message: "query failed validation", requestID: "req-oauth"},
		},
		{
			name:  "429 with Retry-After",
			setup: func(fake *notiontest.Server) { fake.ScriptToken(notiontest.Response{Status: 429, RetryAfter: "2"}) },
			want:  want{status: 429, code: "rate_limited", message: "Too Many Requests", retryAfter: 2 * time.Second, rateLimit: true, retryable: true},
		},
		{
			name:  "529 service_overload with Retry-After",
			setup: func(fake *notiontest.Server) { fake.ScriptToken(notiontest.Response{Status: 529, RetryAfter: "75"}) },
			want:  want{status: 529, code: "service_overload", retryAfter: 75 * time.Second, rateLimit: true, retryable: true},
		},
		{
			name: "Retry-After as a date is ignored",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 429, RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"})
			},
			want: want{status: 429, code: "rate_limited", message: "Too Many Requests", rateLimit: true, retryable: true},
		},
		{
			name: "huge Retry-After is capped",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 429, RetryAfter: "99999999999999"})
			},
			want: want{status: 429, code: "rate_limited", message: "Too Many Requests", retryAfter: 24 * time.Hour, rateLimit: true, retryable: true},
		},
		{
			name: "token endpoint fails with 500 (F7)",
			opts: []notiontest.Option{notiontest.WithTokenStatus(500)},
			want: want{status: 500, code: "internal_server_error", message: "Internal Server Error", retryable: true},
		},
		{
			name: "token endpoint fails with 400 (F7)",
			opts: []notiontest.Option{notiontest.WithTokenStatus(400)},
			want: want{status: 400, code: "invalid_grant", message: "Invalid code: this code has been revoked."},
		},
		{
			name: "html from a proxy: status only",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 502, Body: "<html>bad gateway</html>"})
			},
			want: want{status: 502, retryable: true},
		},
		{
			name:  "403",
			setup: func(fake *notiontest.Server) { fake.ScriptToken(notiontest.Response{Status: 403}) },
			want:  want{status: 403, code: "restricted_resource", message: "Forbidden", auth: true},
		},
		{
			name: "error body on a 200",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 200, Body: `{"error":"invalid_grant","error_description":"expired"}`})
			},
			want: want{status: 200, code: "invalid_grant", message: "expired"},
		},
		{
			name: "oversized error body still gives the status",
			setup: func(fake *notiontest.Server) {
				fake.ScriptToken(notiontest.Response{Status: 503, Body: `{"code":"x","message":"` + strings.Repeat("a", 5000) + `"}`})
			},
			want: want{status: 503, retryable: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t, tc.opts...)
			if tc.setup != nil {
				tc.setup(fake)
			} else {
				fake.AddCode(testCode, notiontest.TokenResponseJSON{})
			}
			creds := credsOf(fake)
			if tc.creds != nil {
				creds = tc.creds(fake)
			}
			c := newClient(t, fake, notion.ClientOptions{MaxBodyBytes: 4096})
			got, err := c.ExchangeCode(t.Context(), creds, testCode, account)
			require.Error(t, err)
			assert.Nil(t, got)
			var apiErr *notion.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.want.status, apiErr.Status)
			assert.Equal(t, tc.want.code, apiErr.Code)
			assert.Equal(t, tc.want.message, apiErr.Message)
			if tc.want.requestID != "" {
				assert.Equal(t, tc.want.requestID, apiErr.RequestID)
			} else {
				assert.NotEmpty(t, apiErr.RequestID, "from the body or x-notion-request-id")
			}
			assert.Equal(t, tc.want.retryAfter, apiErr.RetryAfter)
			assert.Equal(t, tc.want.additional, string(apiErr.AdditionalData))
			assert.Equal(t, tc.want.auth, notion.IsAuth(err), "IsAuth")
			assert.Equal(t, tc.want.rateLimit, notion.IsRateLimited(err), "IsRateLimited")
			assert.Equal(t, tc.want.retryable, notion.IsRetryable(err), "IsRetryable")
			msg := err.Error()
			assert.Contains(t, msg, fmt.Sprint(tc.want.status))
			assert.Contains(t, msg, tc.want.code)
			assert.NotContains(t, msg, testCode)
			assert.NotContains(t, msg, fake.ClientSecret())
		})
	}
}

// TestExchangeCodeSingleUse checks the fake's one-time codes: the second
// exchange of one code is 400 invalid_grant.
func TestExchangeCodeSingleUse(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddCode(testCode, notiontest.TokenResponseJSON{})
	c := newClient(t, fake, notion.ClientOptions{})
	first, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.NoError(t, err)
	// The generated token is honoured by the object endpoint.
	require.NoError(t, c.UpdateObject(t.Context(), first.AccessToken, envelope()))

	_, err = c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	var apiErr *notion.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "invalid_grant", apiErr.Code)
}

// TestExchangeCodeScriptedThenNormal checks that a scripted failure does not
// consume the code, so a retry succeeds.
func TestExchangeCodeScriptedThenNormal(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddCode(testCode, notiontest.TokenResponseJSON{AccessToken: testToken})
	fake.ScriptToken(notiontest.Response{Status: 503})
	c := newClient(t, fake, notion.ClientOptions{})
	_, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.True(t, notion.IsRetryable(err))
	got, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.NoError(t, err)
	assert.Equal(t, testToken, got.AccessToken.Reveal())
	calls := fake.TokenCalls()
	require.Len(t, calls, 2)
	assert.Equal(t, []int{503, 200}, []int{calls[0].Status, calls[1].Status})
}

// TestExchangeCodeBodyCap checks that a success body over MaxBodyBytes is
// refused rather than decoded in part (security.md TH-32 applied to
// Notion).
func TestExchangeCodeBodyCap(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	big := `{"access_token":"` + testToken + `","workspace_name":"` + strings.Repeat("x", 2048) + `"}`
	fake.AddCode(testCode, notiontest.TokenResponseJSON{Raw: big})
	c := newClient(t, fake, notion.ClientOptions{MaxBodyBytes: 1024})
	_, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.ErrorIs(t, err, notion.ErrBodyTooLarge)
	assert.NotContains(t, err.Error(), testToken)
}

// TestExchangeCodeInput checks arguments are refused before anything is
// sent.
func TestExchangeCodeInput(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	c := newClient(t, fake, notion.ClientOptions{})
	good := credsOf(fake)
	cases := []struct {
		name    string
		creds   notion.BasicCredentials
		code    string
		account notion.ExternalAccount
		wantErr string
	}{
		{name: "no client id", creds: notion.BasicCredentials{ClientSecret: good.ClientSecret}, code: testCode, account: account, wantErr: "client id and secret"},
		{name: "no secret", creds: notion.BasicCredentials{ClientID: good.ClientID}, code: testCode, account: account, wantErr: "client id and secret"},
		{name: "no code", creds: good, account: account, wantErr: "code is empty"},
		{name: "no account key", creds: good, code: testCode, account: notion.ExternalAccount{Name: "n"}, wantErr: "account key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ExchangeCode(t.Context(), tc.creds, tc.code, tc.account)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	assert.Empty(t, fake.TokenCalls())
}

// TestSecretsNotPrinted checks TH-49: tokens in a TokenResponse never show
// through fmt verbs, slog or JSON, and credentials Notion might echo back
// in an error message are removed.
func TestSecretsNotPrinted(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddCode(testCode, notiontest.TokenResponseJSON{AccessToken: testToken, RefreshToken: "rt-SECRET-77"})
	c := newClient(t, fake, notion.ClientOptions{})
	got, err := c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.NoError(t, err)

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("exchanged", "resp", got, "value", *got)
	js, err := json.Marshal(got)
	require.NoError(t, err)
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", got), "%+v": fmt.Sprintf("%+v", *got), "%#v": fmt.Sprintf("%#v", *got),
		"%s": fmt.Sprintf("%s", *got), "slog": logs.String(), "json": string(js),
	} {
		assert.NotContains(t, s, testToken, name)
		assert.NotContains(t, s, "rt-SECRET-77", name)
	}

	// Notion echoing the code and the secret in a message.
	fake.ScriptToken(notiontest.Response{Status: 400, Body: `{"error":"invalid_grant","error_description":"code ` +
		testCode + ` for secret ` + fake.ClientSecret() + ` is bad"}`})
	_, err = c.ExchangeCode(t.Context(), credsOf(fake), testCode, account)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testCode)
	assert.NotContains(t, err.Error(), fake.ClientSecret())
	assert.Contains(t, err.Error(), "code <redacted> for secret <redacted> is bad")
}

// TestOwnerKey: the connection identity's owner part is a stable id from
// the owner object, never a name (protocol 4.4, TH-14, TH-39).
func TestOwnerKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		resp notion.TokenResponse
		want string
	}{
		{"user", notion.TokenResponse{OwnerType: notion.OwnerUser, OwnerUserID: "u-1", OwnerName: "Ada", BotID: "bot-1"}, "user:u-1"},
		{"user without id falls back to the bot", notion.TokenResponse{OwnerType: notion.OwnerUser, OwnerName: "Ada", BotID: "bot-1"}, "bot:bot-1"},
		{"workspace owner keeps authorizations apart by bot", notion.TokenResponse{OwnerType: notion.OwnerWorkspace, BotID: "bot-1"}, "workspace:bot-1"},
		{"workspace owner without a bot", notion.TokenResponse{OwnerType: notion.OwnerWorkspace}, notion.OwnerKeyWorkspace},
		{"unknown owner falls back to the bot", notion.TokenResponse{BotID: "bot-1"}, "bot:bot-1"},
		{"nothing at all", notion.TokenResponse{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.resp.OwnerKey())
		})
	}
}
