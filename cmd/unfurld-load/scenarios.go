package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Targets of issue 2, and of issue 11 for the cold unfurl against the
// bare echo server (CPU) and the hand-written handler (p99).
const (
	targetWarmRatio   = 0.80
	targetOverheadP50 = 100 * time.Microsecond
	targetOverheadP99 = time.Millisecond
	targetColdRatio   = 0.35
	targetColdCPU     = 6.0
)

// bench holds what the scenarios share.
type bench struct {
	opts     options
	fake     *fakeUpstream
	load     *loader
	progress func(format string, args ...any)
	rep      *report
	// pg holds the PostgreSQL databases of the run (--store postgres,
	// scenarios f and g).
	pg *pgDatabases
	// bareCPU is the bare echo server's CPU per request in scenario a,
	// the unit of the cold CPU target; zero when a did not run or the
	// platform does not tell.
	bareCPU time.Duration
}

// compare loads measured and baseline alternately: an unmeasured warm-up
// of each, then opts.rounds rounds in ABBA order, so that drift during
// the run falls on both sides alike.
func (bn *bench) compare(ctx context.Context, measured, baseline target) (m, b stats) {
	cm, cb := bn.load.newClient(), bn.load.newClient()
	defer cm.CloseIdleConnections()
	defer cb.CloseIdleConnections()
	warm := min(bn.opts.duration/5, time.Second)
	for _, w := range []struct {
		c *http.Client
		t target
		s *stats
	}{{cb, baseline, &b}, {cm, measured, &m}} {
		ws := bn.load.run(ctx, w.c, w.t, warm)
		w.s.errors, w.s.firstErr = ws.errors, ws.firstErr
	}
	per := bn.opts.duration / time.Duration(bn.opts.rounds)
	for i := range bn.opts.rounds {
		if i%2 == 0 {
			b.merge(bn.load.run(ctx, cb, baseline, per))
			m.merge(bn.load.run(ctx, cm, measured, per))
		} else {
			m.merge(bn.load.run(ctx, cm, measured, per))
			b.merge(bn.load.run(ctx, cb, baseline, per))
		}
	}
	slices.Sort(m.lat)
	slices.Sort(b.lat)
	return m, b
}

// unfurlTarget posts {"uri": uri(n)} to unfurld (or the bare server)
// with the bearer, the way Notion calls.
func unfurlTarget(name string, server *child, token string, uri func(n uint64) []byte, check func(int, []byte) error) target {
	u := "http://" + server.addr + "/providers/bench/unfurl"
	return target{
		name: name, method: http.MethodPost,
		url: func(uint64) string { return u },
		body: func(dst []byte, n uint64) []byte {
			dst = append(dst, `{"uri":"`...)
			dst = append(dst, uri(n)...)
			return append(dst, `"}`...)
		},
		header: http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}},
		check:  check, server: server,
	}
}

// fixedURI is the one URI of the warm scenario.
func fixedURI(uint64) []byte { return []byte("https://bench.example/items/1") }

// distinctURI gives every request its own item, so neither cache nor
// request collapsing can help.
func distinctURI(n uint64) []byte {
	return strconv.AppendUint([]byte("https://bench.example/items/"), n, 10)
}

// sameBytes accepts a 200 answering exactly want.
func sameBytes(want []byte) func(int, []byte) error {
	return func(status int, body []byte) error {
		if status != http.StatusOK || !bytes.Equal(body, want) {
			return fmt.Errorf("status %d, body %.200s", status, body)
		}
		return nil
	}
}

var attributesOp = []byte(`"path":["attributes"]`)

// hasAttributes accepts a 200 carrying an attributes operation, not an
// error operation.
func hasAttributes(status int, body []byte) error {
	if status != http.StatusOK || !bytes.Contains(body, attributesOp) {
		return fmt.Errorf("status %d, body %.200s", status, body)
	}
	return nil
}

// fakeTarget hits the fake upstream directly, for its own latency and
// throughput.
func fakeTarget(f *fakeUpstream) target {
	prefix := f.URL + "/items/"
	return target{
		name: "fake upstream", method: http.MethodGet,
		url:    func(n uint64) string { return prefix + strconv.FormatUint(n, 10) },
		header: http.Header{},
		check: func(status int, body []byte) error {
			if status != http.StatusOK || len(body) != len(issueJSON) {
				return fmt.Errorf("status %d, %d bytes", status, len(body))
			}
			return nil
		},
	}
}

// warm is scenario a: with the cache on, unfurld answering one URI
// against the bare echo server answering the same bytes. It starts the
// bare server itself, since the bytes come from unfurld.
func (bn *bench) warm(ctx context.Context, cs *children, u *unfurldServer, dir string) error {
	bn.progress("a. warm cache: priming and starting the bare server")
	bn.fake.setLatency(0)
	client := bn.load.newClient()
	defer client.CloseIdleConnections()
	prime := unfurlTarget("prime", u.child, u.token, fixedURI, hasAttributes)
	var resp bytes.Buffer
	status, err := do(ctx, client, prime, 0, prime.body(nil, 0), &resp)
	if err == nil {
		err = hasAttributes(status, resp.Bytes())
	}
	if err != nil {
		return fmt.Errorf("first unfurl: %w", err)
	}
	body := bytes.Clone(resp.Bytes())
	bodyFile := filepath.Join(dir, "bare-body.json")
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		return err
	}
	bare, err := startBare(ctx, cs, bodyFile)
	if err != nil {
		return err
	}
	defer bare.stop(5 * time.Second)

	bn.progress("a. warm cache: %s per side, %d workers", bn.opts.duration, bn.opts.concurrency)
	m, b := bn.compare(ctx,
		unfurlTarget("unfurld, warm cache", u.child, u.token, fixedURI, sameBytes(body)),
		unfurlTarget("bare echo, same bytes", bare, u.token, fixedURI, sameBytes(body)))
	ratio := m.throughput() / b.throughput()
	bn.rep.add(row{
		scenario: "a. warm cache, one URI: throughput",
		measured: rate(m), baseline: rate(b) + " (bare)",
		result: fmt.Sprintf("ratio %.2f", ratio), target: fmt.Sprintf(">= %.2f", targetWarmRatio),
		pass: ratio >= targetWarmRatio, errs: m.errors + b.errors,
	})
	bn.rep.detail("a", m, b)
	bn.rep.note("a", fmt.Sprintf("response body %d bytes", len(body)))
	if cpu, ok := b.cpuPerRequest(); ok {
		bn.bareCPU = cpu
	}
	return errors.Join(m.firstErr, b.firstErr)
}

// collapse is scenario d: C concurrent unfurls of one URI never seen
// before, with the cache on and the upstream slow enough that they
// overlap, must cost exactly one upstream call.
func (bn *bench) collapse(ctx context.Context, u *unfurldServer) error {
	n := bn.opts.concurrency
	bn.progress("d. %d concurrent unfurls of one fresh URI", n)
	bn.fake.setLatency(bn.opts.latency)
	defer bn.fake.setLatency(0)
	client := bn.load.newClient()
	defer client.CloseIdleConnections()
	fresh := bn.load.seq.Add(1)
	t := unfurlTarget("collapse", u.child, u.token, distinctURI, hasAttributes)
	body := t.body(nil, fresh)

	before := bn.fake.calls.Load()
	bodies := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var resp bytes.Buffer
			<-start
			status, err := do(ctx, client, t, fresh, body, &resp)
			if err == nil {
				err = hasAttributes(status, resp.Bytes())
			}
			bodies[i], errs[i] = bytes.Clone(resp.Bytes()), err
		})
	}
	close(start)
	wg.Wait()
	calls := bn.fake.calls.Load() - before

	failed := 0
	var firstErr error
	for i, err := range errs {
		if err == nil && !bytes.Equal(bodies[i], bodies[0]) {
			err = errors.New("answers differ between concurrent callers")
		}
		if err != nil {
			failed++
			firstErr = cmp.Or(firstErr, err)
		}
	}
	bn.rep.add(row{
		scenario: fmt.Sprintf("d. %d concurrent unfurls of one fresh URI", n),
		measured: fmt.Sprintf("%d upstream call(s)", calls), baseline: "-",
		result: fmt.Sprintf("%d/%d answered", n-failed, n), target: "== 1 call",
		pass: calls == 1 && failed == 0, errs: failed,
	})
	if firstErr != nil {
		return fmt.Errorf("collapse: %w", firstErr)
	}
	return nil
}

// overhead is scenario b: a slow upstream, no cache, distinct URIs;
// unfurld's latency percentiles minus the upstream's own.
func (bn *bench) overhead(ctx context.Context, u *unfurldServer) error {
	bn.progress("b. upstream latency %s, no cache: %s per side, %d workers", bn.opts.latency, bn.opts.duration, bn.opts.concurrency)
	bn.fake.setLatency(bn.opts.latency)
	defer bn.fake.setLatency(0)
	conns := bn.fake.conns.Load()
	mt := unfurlTarget("unfurld, no cache", u.child, u.token, distinctURI, hasAttributes)
	bt := fakeTarget(bn.fake)
	mt.stagger, bt.stagger = bn.opts.latency, bn.opts.latency
	m, b := bn.compare(ctx, mt, bt)
	for _, q := range []struct {
		name   string
		q      float64
		target time.Duration
	}{{"p50", 0.50, targetOverheadP50}, {"p99", 0.99, targetOverheadP99}} {
		over := m.percentile(q.q) - b.percentile(q.q)
		bn.rep.add(row{
			scenario: fmt.Sprintf("b. upstream %s, no cache: %s overhead", bn.opts.latency, q.name),
			measured: dur(m.percentile(q.q)) + " " + q.name, baseline: dur(b.percentile(q.q)) + " (upstream)",
			result: "+" + dur(over), target: "< " + dur(q.target),
			pass: over < q.target, errs: m.errors + b.errors,
		})
	}
	bn.rep.detail("b", m, b)
	bn.noteConns("b", bn.fake.conns.Load()-conns)
	return errors.Join(m.firstErr, b.firstErr)
}

// cold is scenario c: an instant upstream, no cache, distinct URIs;
// unfurld's throughput over the upstream's own.
func (bn *bench) cold(ctx context.Context, u *unfurldServer) error {
	bn.progress("c. instant upstream, no cache: %s per side, %d workers", bn.opts.duration, bn.opts.concurrency)
	bn.fake.setLatency(0)
	conns := bn.fake.conns.Load()
	m, b := bn.compare(ctx,
		unfurlTarget("unfurld, no cache", u.child, u.token, distinctURI, hasAttributes),
		fakeTarget(bn.fake))
	ratio := m.throughput() / b.throughput()
	bn.rep.add(row{
		scenario: "c. instant upstream, no cache: throughput",
		measured: rate(m), baseline: rate(b) + " (upstream)",
		result: fmt.Sprintf("ratio %.2f", ratio), target: fmt.Sprintf(">= %.2f", targetColdRatio),
		pass: ratio >= targetColdRatio, errs: m.errors + b.errors,
	})
	bn.rep.detail("c", m, b)
	bn.noteConns("c", bn.fake.conns.Load()-conns)
	bn.coldCPU("c", m)
	return errors.Join(m.firstErr, b.firstErr)
}

// coldCPU adds the row of the cold CPU target: unfurld's CPU per cold
// request in scenario s over the bare echo server's per request in
// scenario a of the same run.
func (bn *bench) coldCPU(s string, m stats) {
	cpu, ok := m.cpuPerRequest()
	if !ok || bn.bareCPU <= 0 {
		return
	}
	ratio := float64(cpu) / float64(bn.bareCPU)
	bn.rep.add(row{
		scenario: s + ". CPU per cold request over bare echo's (a)",
		measured: dur(cpu), baseline: dur(bn.bareCPU) + " (bare)",
		result: fmt.Sprintf("ratio %.1f", ratio), target: fmt.Sprintf("<= %.0f", targetColdCPU),
		pass: ratio <= targetColdCPU,
	})
}

// versusHandwritten is scenario e: an instant upstream, no cache,
// distinct URIs; unfurld against the hand-written Go handler of the same
// provider (handwritten.go), with the same load. Its p99 must be no
// worse; the CPU per request of both is in the detail table.
func (bn *bench) versusHandwritten(ctx context.Context, u *unfurldServer, hw *child) error {
	bn.progress("e. instant upstream, no cache, against the hand-written handler: %s per side, %d workers", bn.opts.duration, bn.opts.concurrency)
	bn.fake.setLatency(0)
	m, b := bn.compare(ctx,
		unfurlTarget("unfurld, no cache", u.child, u.token, distinctURI, hasAttributes),
		unfurlTarget("hand-written handler", hw, u.token, distinctURI, hasAttributes))
	over := m.percentile(0.99) - b.percentile(0.99)
	bn.rep.add(row{
		scenario: "e. no cache: p99 against the hand-written handler",
		measured: dur(m.percentile(0.99)) + " p99", baseline: dur(b.percentile(0.99)) + " (hand-written)",
		result: signed(over), target: "<= +0",
		pass: over <= 0, errs: m.errors + b.errors,
	})
	if mc, ok := m.cpuPerRequest(); ok {
		if bc, ok := b.cpuPerRequest(); ok && bc > 0 {
			bn.rep.note("e", fmt.Sprintf("CPU per request: unfurld %.2fx the hand-written handler's", float64(mc)/float64(bc)))
		}
	}
	bn.rep.detail("e", m, b)
	bn.coldCPU("e", m)
	return errors.Join(m.firstErr, b.firstErr)
}

// noteConns reports the connections the fake upstream accepted during a
// scenario. The direct side opens at most one per worker; many more mean
// unfurld's upstream client is not reusing connections.
func (bn *bench) noteConns(scenario string, n int64) {
	bn.rep.note(scenario, fmt.Sprintf("fake upstream accepted %d connections (direct side: at most %d; the rest are unfurld's)", n, bn.opts.concurrency))
}

// signed writes a difference with its sign.
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + dur(-d)
	}
	return "+" + dur(d)
}
