package server_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// serveReal serves the harness's server on a loopback listener through
// Listener and HTTPServer, as `unfurld serve` does, and returns its
// address.
func serveReal(t *testing.T, h *harness) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := h.srv.HTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(h.srv.Listener(ln)) }()
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
	addr := serveReal(t, h)
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
