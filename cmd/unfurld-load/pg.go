package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/unfurld/unfurld/engine/store/postgres/pgcluster"
)

// Targets of issue 11 for unfurld on PostgreSQL, against the same
// scenario on bbolt in the same run.
const (
	targetPgWarmRatio = 0.9
	targetPgColdRatio = 0.7
)

// pgDatabases hands out fresh databases of a throwaway cluster, started
// on first use and stopped with stop. The cluster is durable (fsync and
// synchronous commit on, PostgreSQL's defaults) because bbolt, its
// baseline, syncs every commit too.
type pgDatabases struct {
	mu sync.Mutex
	c  *pgcluster.Cluster
	n  int
}

// database creates an empty database and returns its DSN.
func (p *pgDatabases) database(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		c, err := pgcluster.Start(pgcluster.Options{Durable: true})
		if err != nil {
			return "", fmt.Errorf("start a PostgreSQL cluster: %w", err)
		}
		p.c = c
	}
	p.n++
	return p.c.CreateDatabase(ctx, "unfurld_load_"+strconv.Itoa(p.n))
}

// pids are the cluster's processes (the postmaster and its backends),
// whose CPU time a PostgreSQL side adds to unfurld's.
func (p *pgDatabases) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		return nil
	}
	return p.c.PIDs()
}

func (p *pgDatabases) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		p.c.Stop()
		p.c = nil
	}
}

// counters are the server-side totals the PostgreSQL rows divide: the
// unfurls it answered and the round trips its store made.
type counters struct {
	unfurls, roundTrips float64
}

func (c counters) sub(o counters) counters {
	return counters{unfurls: c.unfurls - o.unfurls, roundTrips: c.roundTrips - o.roundTrips}
}

// perUnfurl is the round trips per answered unfurl.
func (c counters) perUnfurl() float64 {
	if c.unfurls == 0 {
		return 0
	}
	return c.roundTrips / c.unfurls
}

// scrape reads unfurld's /metrics and sums the series of the counters
// named, over their labels.
func scrape(ctx context.Context, addr string, names ...string) (map[string]float64, error) {
	fams, err := scrapeFamilies(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range names {
		for _, m := range fams[name].GetMetric() {
			out[name] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// scrapeFamilies reads and parses unfurld's /metrics.
func scrapeFamilies(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: loopbackDialer}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", addr, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return fams, nil
}

// readCounters scrapes the unfurls and round trips of the server at addr.
func readCounters(ctx context.Context, addr string) (counters, error) {
	const unfurls, trips = "unfurld_unfurl_requests_total", "unfurld_store_round_trips_total"
	m, err := scrape(ctx, addr, unfurls, trips)
	if err != nil {
		return counters{}, err
	}
	return counters{unfurls: m[unfurls], roundTrips: m[trips]}, nil
}

// pgVersusBolt runs a scenario with unfurld on PostgreSQL (measured)
// against unfurld on bbolt (baseline), both servers up at once and
// loaded alternately, and adds the throughput ratio, the round trips
// per unfurl (from the PostgreSQL server's own counters, warm-up
// included) and the CPU per request. warm selects scenario f (cache on,
// one URI) or g (cache off, distinct URIs).
func (bn *bench) pgVersusBolt(ctx context.Context, cs *children, dir string, warm bool) error {
	letter, what, ttl, uri, goal := "g", "cold (no cache, instant upstream, distinct URIs)", "0s", distinctURI, targetPgColdRatio
	if warm {
		letter, what, ttl, uri, goal = "f", "warm (cache on, one URI)", "10m", fixedURI, targetPgWarmRatio
	}
	bn.progress("%s. %s: starting unfurld on bbolt and on PostgreSQL", letter, what)
	bn.fake.setLatency(0)
	dsn, err := bn.pg.database(ctx)
	if err != nil {
		return err
	}
	onBolt, err := startUnfurld(ctx, cs, bn.opts.bin, dir, letter+"-bolt", bn.fake.URL, ttl, "")
	if err != nil {
		return err
	}
	defer onBolt.stop(10 * time.Second)
	onPg, err := startUnfurld(ctx, cs, bn.opts.bin, dir, letter+"-postgres", bn.fake.URL, ttl, dsn)
	if err != nil {
		return err
	}
	defer onPg.stop(10 * time.Second)
	mt := unfurlTarget("unfurld on PostgreSQL", onPg.child, onPg.token, uri, hasAttributes)
	bt := unfurlTarget("unfurld on bbolt", onBolt.child, onBolt.token, uri, hasAttributes)
	mt.extraPIDs = bn.pg.pids
	if warm {
		// The first unfurl fills the cache; the measured ones are hits.
		for _, t := range []target{mt, bt} {
			if err := bn.prime(ctx, t); err != nil {
				return err
			}
		}
	}
	before, err := readCounters(ctx, onPg.addr)
	if err != nil {
		return err
	}
	bn.progress("%s. %s: %s per side, %d workers", letter, what, bn.opts.duration, bn.opts.concurrency)
	m, b := bn.compare(ctx, mt, bt)
	after, err := readCounters(ctx, onPg.addr)
	if err != nil {
		return err
	}
	ratio := m.throughput() / b.throughput()
	bn.rep.add(row{
		scenario: letter + ". " + what + ": PostgreSQL over bbolt",
		measured: rate(m), baseline: rate(b) + " (bbolt)",
		result: fmt.Sprintf("ratio %.2f", ratio), target: fmt.Sprintf(">= %.2f", goal),
		pass: ratio >= goal, errs: m.errors + b.errors,
	})
	d := after.sub(before)
	bn.rep.add(row{
		scenario: letter + ". database round trips per unfurl",
		measured: fmt.Sprintf("%.0f round trips", d.roundTrips), baseline: fmt.Sprintf("%.0f unfurls", d.unfurls),
		result: fmt.Sprintf("%.3f per unfurl", d.perUnfurl()), target: "report",
		pass: true,
	})
	bn.rep.detail(letter, m, b)
	if mc, ok := m.cpuPerRequest(); ok {
		if bc, ok := b.cpuPerRequest(); ok && bc > 0 {
			bn.rep.note(letter, fmt.Sprintf("CPU per request, unfurld plus the PostgreSQL server's processes: %s, %.2fx unfurld's on bbolt; of it, PostgreSQL %s",
				dur(mc), float64(mc)/float64(bc), dur(m.extraCPU/time.Duration(max(m.requests, 1)))))
		}
	}
	return errors.Join(m.firstErr, b.firstErr)
}

// prime sends one unfurl to t and wants attributes back.
func (bn *bench) prime(ctx context.Context, t target) error {
	client := bn.load.newClient()
	defer client.CloseIdleConnections()
	var resp bytes.Buffer
	status, err := do(ctx, client, t, 0, t.body(nil, 0), &resp)
	if err == nil {
		err = hasAttributes(status, resp.Bytes())
	}
	if err != nil {
		return fmt.Errorf("first unfurl on %s: %w", t.name, err)
	}
	return nil
}

// pollCount scrapes the polls the server at addr has made (its
// refreshes triggered by the schedule, whatever their outcome) and its
// round trips to the database, everything included.
func pollCount(ctx context.Context, addr string) (polls, roundTrips float64, err error) {
	fams, err := scrapeFamilies(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range fams["unfurld_store_round_trips_total"].GetMetric() {
		roundTrips += m.GetCounter().GetValue()
	}
	for _, m := range fams["unfurld_live_refreshes_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "trigger" && l.GetValue() == "poll" {
				polls += m.GetCounter().GetValue()
			}
		}
	}
	return polls, roundTrips, nil
}
