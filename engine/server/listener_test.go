package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
)

// serveReal serves srv on a loopback listener through Listener and
// HTTPServer, as `unfurld serve` does, and returns its address.
func serveReal(t *testing.T, srv *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := srv.HTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(srv.Listener(ln)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close()
	})
	return ln.Addr().String()
}

// openConn dials addr and completes one keep-alive request on the
// connection, so the server has accepted it and holds it open.
func openConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return c
}

// TestMaxConnectionsTH47: with server.max_connections open connections,
// connection N+1 is not served until one of them closes.
func TestMaxConnectionsTH47(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Server.MaxConnections = 2 })
	addr := serveReal(t, h.srv)
	first := openConn(t, addr)
	openConn(t, addr)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	done := make(chan int, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		require.FailNow(t, "a third connection was served while two were open", "status %d", code)
	case <-time.After(300 * time.Millisecond):
	}

	require.NoError(t, first.Close())
	select {
	case code := <-done:
		assert.Equal(t, http.StatusOK, code)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the third connection was not served after one closed")
	}
}

// withReadTimeout sets a short whole-request read timeout.
func withReadTimeout(d time.Duration) option {
	return func(c *config.Config) {
		c.Server.ReadTimeout = config.Duration(d)
		c.Server.ReadHeaderTimeout = config.Duration(d)
	}
}

// TestSlowBodyIs408TH47 sends the headers and half the body at once,
// then stalls: when http.Server's ReadTimeout fires mid-body, every route
// that reads a body answers 408 in its usual error shape, not 400. It
// drives a real listener and waits for a 1 s timeout, so it is not run
// with -short.
func TestSlowBodyIs408TH47(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a read timeout of one second")
	}
	t.Parallel()
	const timeout = time.Second

	h := newOAuthHarness(t, time.Hour, withReadTimeout(timeout))
	withFlows(t, h.harness, 100)
	tok, _ := h.token("tracker")
	main := serveReal(t, h.srv)
	hooks := serveReal(t, newWebhookServer(t, &fakeLive{}, withReadTimeout(timeout)))

	tests := []struct {
		name, addr, path, header, body, wantType, wantBody string
	}{
		{
			name: "unfurl", addr: main, path: "/providers/tracker/unfurl",
			header:   "Authorization: Bearer " + tok + "\r\nContent-Type: application/json\r\n",
			body:     `{"uri":"https://tracker.example.com/acme/items/1"}`,
			wantType: "application/json",
			wantBody: `{"uri":"","operations":[{"path":["error"],"set":{"status":408,"message":"` + "the request body was not received in time" + `"}}]}`,
		},
		{
			name: "token", addr: main, path: "/providers/tracker/token",
			header:   "Content-Type: application/x-www-form-urlencoded\r\n",
			body:     notionForm("ufd_code_x"),
			wantType: "application/json;charset=UTF-8",
			wantBody: `{"error":"invalid_request","error_description":"the request body was not received in time"}`,
		},
		{
			name: "deleted", addr: main, path: "/providers/tracker/deleted",
			header:   "Authorization: Bearer " + tok + "\r\nContent-Type: application/json\r\n",
			body:     `{"access_token":"` + tok + `"}`,
			wantType: "application/json",
			wantBody: `{"uri":"","operations":[{"path":["error"],"set":{"status":408,"message":"the request body was not received in time"}}]}`,
		},
		{
			name: "consent form", addr: main, path: "/providers/tracker/consent",
			header:   "Content-Type: application/x-www-form-urlencoded\r\n",
			body:     "csrf=abcdefghijklmnop&decision=allow",
			wantType: "text/html; charset=utf-8",
		},
		{
			name: "api-key form", addr: main, path: "/providers/tracker/api-key",
			header:   "Content-Type: application/x-www-form-urlencoded\r\n",
			body:     "csrf=abcdefghijklmnop&decision=allow&api_key=k",
			wantType: "text/html; charset=utf-8",
		},
		{
			name: "webhook", addr: hooks, path: "/providers/gh/webhook",
			header:   "Content-Type: application/json\r\nX-Hub-Signature-256: sha256=00\r\n",
			body:     `{"issue":{"html_url":"https://gh.example/1"}}`,
			wantType: "application/json",
			wantBody: `{"uri":"","operations":[{"path":["error"],"set":{"status":408,"message":"the request body was not received in time"}}]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", tc.addr)
			require.NoError(t, err)
			defer c.Close()
			half := tc.body[:len(tc.body)/2]
			_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: unfurl.example.com\r\n%sContent-Length: %d\r\n\r\n%s", tc.path, tc.header, len(tc.body), half)
			require.NoError(t, err)
			// The client stalls here; only the server's timeout ends it.
			require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
			assert.Equal(t, tc.wantType, resp.Header.Get("Content-Type"))
			if tc.wantBody != "" {
				assert.JSONEq(t, tc.wantBody, string(body))
			}
		})
	}
}
