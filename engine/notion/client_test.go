package notion_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
)

// Values that must never show up in an error string or a printout
// (security.md TH-49).
const (
	testCode  = "code-9f1c2e7a-SECRET"
	testToken = "ntn_token_5b2d-SECRET"
)

// newClient returns a client aimed at fake, with opts' other fields kept.
func newClient(t *testing.T, fake *notiontest.Server, opts notion.ClientOptions) *notion.Client {
	t.Helper()
	opts.BaseURL = fake.URL()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	c, err := notion.NewClient(opts)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// credsOf returns the integration credentials fake accepts.
func credsOf(fake *notiontest.Server) notion.BasicCredentials {
	return notion.BasicCredentials{ClientID: fake.ClientID(), ClientSecret: config.Secret(fake.ClientSecret())}
}

// envelope is a small valid PATCH body.
func envelope() notion.Envelope {
	return notion.Envelope{URI: "https://acme.com/items/1", Operations: []notion.Operation{
		notion.AttributesOp([]notion.Attribute{{ID: "title", Name: "Title", Type: "inline",
			Inline: &notion.Inline{Title: &notion.Text{Value: "Item 1", Section: "title"}}}}),
	}}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    notion.ClientOptions
		wantErr string
	}{
		{name: "defaults", opts: notion.ClientOptions{}},
		{name: "loopback with path", opts: notion.ClientOptions{BaseURL: "http://127.0.0.1:8080/notion/"}},
		{name: "not a url", opts: notion.ClientOptions{BaseURL: "://x"}, wantErr: "notion base url"},
		{name: "ftp scheme", opts: notion.ClientOptions{BaseURL: "ftp://api.notion.com"}, wantErr: "want http(s)"},
		{name: "no host", opts: notion.ClientOptions{BaseURL: "https://"}, wantErr: "want http(s)"},
		{name: "userinfo", opts: notion.ClientOptions{BaseURL: "https://u:p@api.notion.com"}, wantErr: "want http(s)"},
		{name: "query", opts: notion.ClientOptions{BaseURL: "https://api.notion.com?x=1"}, wantErr: "want http(s)"},
		{name: "negative timeout", opts: notion.ClientOptions{Timeout: -time.Second}, wantErr: "negative"},
		{name: "negative body cap", opts: notion.ClientOptions{MaxBodyBytes: -1}, wantErr: "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := notion.NewClient(tc.opts)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, c)
		})
	}
}

// TestBaseURLTrailingSlash checks that a configured base URL ending in
// "/" still reaches /v1/... and not //v1/... (STYLE.md 3).
func TestBaseURLTrailingSlash(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddToken(testToken)
	c, err := notion.NewClient(notion.ClientOptions{BaseURL: fake.URL() + "/"})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	require.NoError(t, c.UpdateObject(t.Context(), testToken, envelope()))
	calls := fake.PatchCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, http.StatusOK, calls[0].Status)
}

// TestNoRedirects checks that a 3xx is reported, not followed: following
// it would carry the Basic credentials or the Bearer token elsewhere
// (security.md TH-49).
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddCode(testCode, notiontest.TokenResponseJSON{})
	fake.AddToken(testToken)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fake.URL()+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	c, err := notion.NewClient(notion.ClientOptions{BaseURL: redirector.URL})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)

	_, err = c.ExchangeCode(t.Context(), credsOf(fake), testCode, notion.ExternalAccount{Key: "k"})
	var apiErr *notion.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusTemporaryRedirect, apiErr.Status)

	err = c.UpdateObject(t.Context(), testToken, envelope())
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusTemporaryRedirect, apiErr.Status)

	assert.Empty(t, fake.TokenCalls())
	assert.Empty(t, fake.PatchCalls())
}

// TestTimeout covers security.md F7 (Notion's token endpoint hangs) and the
// same for PATCH: the per-call Timeout ends the call, the error is
// retryable, and nothing secret is in it.
func TestTimeout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		call func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error
		opts []notiontest.Option
	}{
		{
			name: "token endpoint hangs (F7)",
			opts: []notiontest.Option{notiontest.WithTokenHang()},
			call: func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error {
				_, err := c.ExchangeCode(ctx, credsOf(fake), testCode, notion.ExternalAccount{Key: "k"})
				return err
			},
		},
		{
			name: "object endpoint hangs",
			call: func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error {
				fake.AddToken(testToken)
				fake.ScriptPatch(notiontest.Response{Hang: true})
				return c.UpdateObject(ctx, testToken, envelope())
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t, tc.opts...)
			c := newClient(t, fake, notion.ClientOptions{Timeout: 100 * time.Millisecond})
			start := time.Now()
			err := tc.call(t.Context(), c, fake)
			require.Error(t, err)
			assert.Less(t, time.Since(start), 5*time.Second, "the timeout must end the call")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, notion.ErrUnavailable)
			assert.True(t, notion.IsRetryable(err))
			assert.NotContains(t, err.Error(), testCode)
			assert.NotContains(t, err.Error(), testToken)
		})
	}
}

// TestCancellation checks that cancelling the caller's context stops a
// call that Notion is holding (STYLE.md 5), and that this is not reported
// as retryable.
func TestCancellation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts []notiontest.Option
		call func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error
	}{
		{
			name: "exchange code",
			opts: []notiontest.Option{notiontest.WithTokenHang()},
			call: func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error {
				_, err := c.ExchangeCode(ctx, credsOf(fake), testCode, notion.ExternalAccount{Key: "k"})
				return err
			},
		},
		{
			name: "update object",
			call: func(ctx context.Context, c *notion.Client, fake *notiontest.Server) error {
				return c.UpdateObject(ctx, testToken, envelope())
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t, tc.opts...)
			fake.AddToken(testToken)
			fake.ScriptPatch(notiontest.Response{Hang: true})
			c := newClient(t, fake, notion.ClientOptions{Timeout: time.Minute})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tc.call(ctx, c, fake) }()
			<-fake.Hung() // the request is at Notion now
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
				assert.NotErrorIs(t, err, notion.ErrUnavailable)
				assert.False(t, notion.IsRetryable(err))
			case <-time.After(10 * time.Second):
				t.Fatal("call did not return after cancel")
			}
		})
	}
}

// TestNoLeaks checks that calls, including a timed-out one, leave no
// goroutines behind once idle connections are closed (security.md TH-54).
// Not parallel: goleak looks at the whole process.
func TestNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// The subtest owns the fake, whose Cleanup closes it when the subtest
	// ends, before the check below.
	t.Run("calls", func(t *testing.T) {
		fake := notiontest.New(t)
		fake.AddCode(testCode, notiontest.TokenResponseJSON{AccessToken: testToken})
		c, err := notion.NewClient(notion.ClientOptions{BaseURL: fake.URL(), Timeout: 100 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(c.CloseIdleConnections)
		_, err = c.ExchangeCode(t.Context(), credsOf(fake), testCode, notion.ExternalAccount{Key: "k"})
		require.NoError(t, err)
		require.NoError(t, c.UpdateObject(t.Context(), testToken, envelope()))
		fake.ScriptPatch(notiontest.Response{Hang: true})
		require.ErrorIs(t, c.UpdateObject(t.Context(), testToken, envelope()), context.DeadlineExceeded)
	})
	goleak.VerifyNone(t, ignore)
}

// notionSecret wraps a test token.
func notionSecret(s string) config.Secret { return config.Secret(s) }
