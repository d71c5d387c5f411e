package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one HTTP endpoint under load. Requests are numbered; a target
// that wants a distinct URI per request builds it from the number.
type target struct {
	// name labels the target in the report.
	name string
	// method is GET or POST.
	method string
	// url returns the request URL for request n.
	url func(n uint64) string
	// body appends the request body for request n to dst; nil for none.
	body func(dst []byte, n uint64) []byte
	// header is sent on every request; it is shared and never modified.
	header http.Header
	// check validates a response after its duration was taken.
	check func(status int, body []byte) error
	// stagger spreads the workers' first requests evenly over this
	// time. With a slow upstream, workers started together would stay in
	// lockstep and hit the server in bursts of C requests at once, which
	// measures queueing behind the burst rather than the per-request
	// overhead; real callers arrive spread out.
	stagger time.Duration
	// server is the child process serving the target, whose CPU time is
	// sampled around each run; nil for the in-process fake upstream.
	server *child
	// extraPIDs, when set, lists more processes whose CPU time counts as
	// the server's: the PostgreSQL server behind unfurld.
	extraPIDs func() []int
}

// stats is the outcome of load on one target.
type stats struct {
	name     string
	requests int
	errors   int
	firstErr error
	elapsed  time.Duration
	// cpu is the serving process's CPU time during the runs, when known.
	cpu      time.Duration
	cpuKnown bool
	// extraCPU is the part of cpu the target's extraPIDs used.
	extraCPU time.Duration
	// lat holds each successful request's duration, sorted.
	lat []time.Duration
}

// throughput is successful requests per second.
func (s stats) throughput() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

// cpuPerRequest is the serving process's CPU time per successful request.
func (s stats) cpuPerRequest() (time.Duration, bool) {
	if !s.cpuKnown || s.requests == 0 {
		return 0, false
	}
	return s.cpu / time.Duration(s.requests), true
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1).
func (s stats) percentile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s.lat)))) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// merge adds o's requests to s; the caller sorts once at the end.
func (s *stats) merge(o stats) {
	s.name = o.name
	s.requests += o.requests
	s.errors += o.errors
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.extraCPU += o.extraCPU
	s.cpuKnown = o.cpuKnown
	s.lat = append(s.lat, o.lat...)
}

// loader drives targets with a fixed number of keep-alive workers.
type loader struct {
	concurrency int
	// perWorker bounds the requests one worker makes in one run, and is
	// the size of its preallocated latency slice.
	perWorker int
	// seq numbers requests across the whole process, so distinct-URI
	// targets never repeat a URI, even between scenarios.
	seq atomic.Uint64
}

// maxErrorsPerWorker stops a worker that only meets errors (a dead
// server) instead of spinning until the deadline.
const maxErrorsPerWorker = 100

// newClient returns a client for one target: one pooled keep-alive
// connection per worker, no proxy (loopback only), no compression.
func (l *loader) newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         loopbackDialer,
			MaxIdleConns:        l.concurrency,
			MaxIdleConnsPerHost: l.concurrency,
			MaxConnsPerHost:     l.concurrency,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
		Timeout: 30 * time.Second,
	}
}

// loopbackDialer refuses anything but 127.0.0.1, so no misconfiguration
// can send load off the machine.
func loopbackDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("dial %s: only 127.0.0.1 is allowed", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// run loads t with l.concurrency workers for d (or until each worker made
// l.perWorker requests) and returns the merged, sorted stats.
func (l *loader) run(ctx context.Context, client *http.Client, t target, d time.Duration) stats {
	type result struct {
		lat      []time.Duration
		errors   int
		firstErr error
	}
	results := make([]result, l.concurrency)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	var deadline time.Time
	for w := range l.concurrency {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			lat := make([]time.Duration, 0, l.perWorker)
			var body []byte
			var resp bytes.Buffer
			res := &results[w]
			ready.Done()
			<-start
			if t.stagger > 0 {
				time.Sleep(t.stagger * time.Duration(w) / time.Duration(l.concurrency))
			}
			for len(lat) < cap(lat) && res.errors < maxErrorsPerWorker && ctx.Err() == nil {
				n := l.seq.Add(1)
				if t.body != nil {
					body = t.body(body[:0], n)
				}
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				status, err := do(ctx, client, t, n, body, &resp)
				dt := time.Since(t0)
				if err == nil {
					err = t.check(status, resp.Bytes())
				}
				if err != nil {
					res.errors++
					if res.firstErr == nil {
						res.firstErr = fmt.Errorf("%s: %w", t.name, err)
					}
					continue
				}
				lat = append(lat, dt)
			}
			res.lat = lat
		}()
	}
	ready.Wait()
	var cpu0 time.Duration
	cpuKnown := false
	if t.server != nil {
		cpu0, cpuKnown = cpuTime(t.server.cmd.Process.Pid)
	}
	var extra0 map[int]time.Duration
	if t.extraPIDs != nil {
		extra0 = cpuTimes(t.extraPIDs())
	}
	begin := time.Now()
	deadline = begin.Add(d)
	close(start)
	done.Wait()
	s := stats{name: t.name, elapsed: time.Since(begin)}
	if cpuKnown {
		cpu1, ok := cpuTime(t.server.cmd.Process.Pid)
		s.cpu, s.cpuKnown = cpu1-cpu0, ok
	}
	if t.extraPIDs != nil {
		// A process that started during the run counts from zero; one
		// that ended during it is lost (the pool keeps its connections).
		for pid, c1 := range cpuTimes(t.extraPIDs()) {
			s.extraCPU += c1 - extra0[pid]
		}
		s.cpu += s.extraCPU
	}
	for _, r := range results {
		s.requests += len(r.lat)
		s.errors += r.errors
		if s.firstErr == nil {
			s.firstErr = r.firstErr
		}
		s.lat = append(s.lat, r.lat...)
	}
	slices.Sort(s.lat)
	return s
}

// do sends request n of t and reads the whole response into resp, so the
// connection goes back to the pool and the duration covers the body.
func do(ctx context.Context, client *http.Client, t target, n uint64, body []byte, resp *bytes.Buffer) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, t.url(n), rd)
	if err != nil {
		return 0, err
	}
	req.Header = t.header
	r, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the report already
		}
		return 0, err
	}
	resp.Reset()
	_, err = resp.ReadFrom(r.Body)
	_ = r.Body.Close()
	return r.StatusCode, err
}
