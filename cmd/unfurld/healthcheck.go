package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is where the image's server listens (the Dockerfile
// starts it with --listen :8080); the container's own loopback reaches it.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// healthcheck asks a running server's /healthz and exits 0 on a 200, 1
// on anything else: the container health check of an image that has no
// shell or curl. It sends no credential, so any address is safe to ask.
func healthcheck(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("healthcheck", e)
	target := fs.String("url", defaultHealthURL, "the server's /healthz `URL`")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "unfurld healthcheck: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld healthcheck: %v\n", err)
		return exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld healthcheck: %v\n", err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(e.stderr, "unfurld healthcheck: %s answered %s: %s\n", *target, resp.Status, oneLine(strings.TrimSpace(string(body))))
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", *target, oneLine(strings.TrimSpace(string(body))))
	return exitOK
}
