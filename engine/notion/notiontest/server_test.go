package notiontest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion/notiontest"
)

// The client tests in package notion exercise the fake's normal paths;
// these cover what the client never sends.

// send makes one request to the fake and returns status and decoded body.
func send(t *testing.T, s *notiontest.Server, method, path string, header map[string]string, body string) (int, map[string]any) {
	t.Helper()
	status, out, err := do(t.Context(), s, method, path, header, body)
	require.NoError(t, err)
	return status, out
}

// do is send without assertions, for goroutines.
func do(ctx context.Context, s *notiontest.Server, method, path string, header map[string]string, body string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.Header.Get("x-notion-request-id") == "" {
		return 0, nil, errors.New("no x-notion-request-id header")
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return 0, nil, fmt.Errorf("%w: %s", err, raw)
		}
	}
	return resp.StatusCode, out, nil
}

func basic(s *notiontest.Server) map[string]string {
	req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
	req.SetBasicAuth(s.ClientID(), s.ClientSecret())
	return map[string]string{"Authorization": req.Header.Get("Authorization"), "Content-Type": "application/json"}
}

func TestTokenEndpointRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		method     string
		header     func(s *notiontest.Server) map[string]string
		body       string
		wantStatus int
		wantError  string // OAuth-style "error"
		wantCode   string // API-style "code"
	}{
		{name: "GET", method: http.MethodGet, header: basic, wantStatus: 405, wantCode: "invalid_request_url"},
		{name: "no credentials", method: http.MethodPost, header: func(*notiontest.Server) map[string]string { return nil },
			body: `{"grant_type":"authorization_code","code":"c"}`, wantStatus: 401, wantError: "invalid_client"},
		{name: "not json", method: http.MethodPost, header: basic, body: "code=c", wantStatus: 400, wantError: "invalid_request"},
		{name: "refresh grant", method: http.MethodPost, header: basic, body: `{"grant_type":"refresh_token"}`,
			wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "empty code", method: http.MethodPost, header: basic, body: `{"grant_type":"authorization_code"}`,
			wantStatus: 400, wantError: "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := notiontest.New(t)
			status, body := send(t, s, tc.method, "/v1/oauth/token", tc.header(s), tc.body)
			assert.Equal(t, tc.wantStatus, status)
			if tc.wantError != "" {
				assert.Equal(t, tc.wantError, body["error"])
				assert.NotEmpty(t, body["error_description"])
				assert.NotEmpty(t, body["request_id"])
			} else {
				assert.Equal(t, "error", body["object"])
				assert.Equal(t, tc.wantCode, body["code"])
			}
			calls := s.TokenCalls()
			require.Len(t, calls, 1)
			assert.Equal(t, tc.wantStatus, calls[0].Status)
			assert.Equal(t, tc.method, calls[0].Method)
		})
	}
}

func TestObjectEndpointRejects(t *testing.T) {
	t.Parallel()
	const token = "tok"
	auth := map[string]string{"Authorization": "Bearer " + token, "Notion-Version": "2021-08-16"}
	cases := []struct {
		name       string
		method     string
		header     map[string]string
		body       string
		wantStatus int
		wantCode   string
	}{
		{name: "POST", method: http.MethodPost, header: auth, body: `{}`, wantStatus: 405, wantCode: "invalid_request_url"},
		{name: "no bearer", method: http.MethodPatch, header: map[string]string{"Notion-Version": "2021-08-16"}, body: `{}`, wantStatus: 401, wantCode: "unauthorized"},
		{name: "basic instead of bearer", method: http.MethodPatch, header: map[string]string{"Authorization": "Basic " + token}, body: `{}`, wantStatus: 401, wantCode: "unauthorized"},
		{name: "no version", method: http.MethodPatch, header: map[string]string{"Authorization": "Bearer " + token}, body: `{}`, wantStatus: 400, wantCode: "missing_version"},
		{name: "bad json", method: http.MethodPatch, header: auth, body: `{`, wantStatus: 400, wantCode: "invalid_json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := notiontest.New(t)
			s.AddToken(token)
			status, body := send(t, s, tc.method, "/v1/external/object", tc.header, tc.body)
			assert.Equal(t, tc.wantStatus, status)
			assert.Equal(t, "error", body["object"])
			assert.Equal(t, tc.wantCode, body["code"])
			assert.InDelta(t, float64(tc.wantStatus), body["status"], 0)
			calls := s.PatchCalls()
			require.Len(t, calls, 1)
			assert.Equal(t, tc.wantStatus, calls[0].Status)
		})
	}
}

// TestConcurrentPatches checks the fake is safe for concurrent use: every
// call is recorded and each scripted answer is given exactly once.
func TestConcurrentPatches(t *testing.T) {
	t.Parallel()
	s := notiontest.New(t)
	s.AddToken("tok")
	s.ScriptPatch(notiontest.Response{Status: 429, RetryAfter: "1"}, notiontest.Response{Status: 500}, notiontest.Response{Status: 202})
	header := map[string]string{"Authorization": "Bearer tok", "Notion-Version": "2021-08-16"}
	const n = 40
	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], _, errs[i] = do(t.Context(), s, http.MethodPatch, "/v1/external/object", header, `{"uri":"u","operations":[]}`)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	assert.Equal(t, map[int]int{429: 1, 500: 1, 202: 1, 200: n - 3}, count)
	calls := s.PatchCalls()
	require.Len(t, calls, n)
	for _, c := range calls {
		assert.Equal(t, "u", c.Body.URI)
		assert.Equal(t, "tok", c.Token)
	}
}

// TestRecordsAreCopies checks that callers cannot change what the fake
// recorded, and that the clock is the injected one.
func TestRecordsAreCopies(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	s := notiontest.New(t, notiontest.WithClock(func() time.Time { return at }))
	s.AddCode("c1", notiontest.TokenResponseJSON{AccessToken: "tok"})
	status, body := send(t, s, http.MethodPost, "/v1/oauth/token", basic(s), `{"grant_type":"authorization_code","code":"c1"}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "tok", body["access_token"])
	assert.Equal(t, "bearer", body["token_type"])
	assert.Nil(t, body["workspace_name"])
	assert.Nil(t, body["duplicated_template_id"])
	assert.NotContains(t, body, "refresh_token")
	assert.Equal(t, map[string]any{"type": "workspace", "workspace": true}, body["owner"])

	calls := s.TokenCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, at, calls[0].Time)
	calls[0].Header.Set("Authorization", "changed")
	calls[0].Status = 999
	again := s.TokenCalls()
	assert.NotEqual(t, "changed", again[0].Header.Get("Authorization"))
	assert.Equal(t, http.StatusOK, again[0].Status)

	// AddCode again makes a used code redeemable once more.
	s.AddCode("c1", notiontest.TokenResponseJSON{AccessToken: "tok2"})
	status, body = send(t, s, http.MethodPost, "/v1/oauth/token", basic(s), `{"grant_type":"authorization_code","code":"c1"}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "tok2", body["access_token"])
}

// TestHungReleasedOnClose checks that a hung handler does not keep the
// fake's Cleanup waiting forever: it returns when the server closes.
func TestHungReleasedOnClose(t *testing.T) {
	t.Parallel()
	// The outer test's context outlives the subtest, so only the fake's
	// Cleanup can end the request.
	ctx := t.Context()
	done := make(chan struct{})
	t.Run("server", func(t *testing.T) {
		s := notiontest.New(t, notiontest.WithTokenHang())
		go func() {
			defer close(done)
			_, _, _ = do(ctx, s, http.MethodPost, "/v1/oauth/token", nil, "{}")
		}()
		<-s.Hung()
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hung request not released when the fake closed")
	}
}

// TestDropAndUserOwner: a scripted Drop reaches the client as a network
// failure with nothing answered, and UserOwner gives each Notion user the
// owner object of protocol 4.4.
func TestDropAndUserOwner(t *testing.T) {
	t.Parallel()
	s := notiontest.New(t)
	s.ScriptToken(notiontest.Response{Drop: true})
	_, _, err := do(t.Context(), s, http.MethodPost, "/v1/oauth/token", basic(s), `{"grant_type":"authorization_code","code":"c1"}`)
	require.Error(t, err)
	calls := s.TokenCalls()
	require.Len(t, calls, 1)
	assert.Zero(t, calls[0].Status, "nothing answered")

	s.AddCode("c1", notiontest.TokenResponseJSON{Owner: notiontest.UserOwner("u-1", "ada")})
	status, body := send(t, s, http.MethodPost, "/v1/oauth/token", basic(s), `{"grant_type":"authorization_code","code":"c1"}`)
	require.Equal(t, http.StatusOK, status)
	owner, _ := body["owner"].(map[string]any)
	require.NotNil(t, owner, "owner object: %v", body)
	assert.Equal(t, "user", owner["type"])
	user, _ := owner["user"].(map[string]any)
	assert.Equal(t, "u-1", user["id"])
}
