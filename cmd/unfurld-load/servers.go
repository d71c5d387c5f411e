package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

// issueJSON is the canned upstream body: a GitHub REST issue of about
// 6 KB, so mapping reads fields out of a realistically sized document.
//
//go:embed issue.json
var issueJSON []byte

// fakeUpstream is the in-process upstream API: GET /items/{n} answers
// issueJSON after a configurable latency, and every answer is counted.
type fakeUpstream struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL     string
	srv     *http.Server
	latency atomic.Int64 // nanoseconds
	calls   atomic.Int64
	// conns counts accepted connections: a client that does not reuse
	// its keep-alive connections shows up here.
	conns atomic.Int64
}

// startFake listens on a free loopback port and serves until close.
func startFake() (*fakeUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake upstream: %w", err)
	}
	f := &fakeUpstream{URL: "http://" + ln.Addr().String()}
	f.srv = &http.Server{
		Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				f.conns.Add(1)
			}
		},
	}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// setLatency sets how long each answer waits.
func (f *fakeUpstream) setLatency(d time.Duration) { f.latency.Store(int64(d)) }

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	n, ok := strings.CutPrefix(r.URL.Path, "/items/")
	if _, err := strconv.ParseUint(n, 10, 64); !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	f.calls.Add(1)
	if d := time.Duration(f.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(issueJSON)))
	_, _ = w.Write(issueJSON)
}

func (f *fakeUpstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = f.srv.Shutdown(ctx)
}

// runBare is the "bare" subcommand: the baseline server, an echo app with
// one POST route answering the bytes in --body, exactly what unfurld
// answers for the warm URI. GET /healthz exists only for the start-up
// wait. It runs until SIGINT or SIGTERM.
func runBare(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("unfurld-load bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	bodyFile := fs.String("body", "", "`file` holding the response body (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load bare: %v\n", err)
		return exitUsage
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || host != "127.0.0.1" {
		fmt.Fprintf(stderr, "unfurld-load bare: --listen must be 127.0.0.1:PORT\n")
		return exitUsage
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.POST("/providers/:provider/unfurl", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
	})
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	return serveUntilSignal("bare", *listen, e, stderr)
}

// serveUntilSignal serves h on listen until SIGINT or SIGTERM, then shuts
// down gracefully; name prefixes its errors. It uses the same timeouts as
// unfurld's defaults, so the baselines run the same net/http machinery.
func serveUntilSignal(name, listen string, h http.Handler, stderr io.Writer) int {
	srv := &http.Server{
		Addr: listen, Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "unfurld-load %s: %v\n", name, err)
		return exitFailure
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "unfurld-load %s: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}
