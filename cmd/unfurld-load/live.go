package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// liveOptions are the flags of `unfurld-load live`.
type liveOptions struct {
	bin         string
	subs        int
	conns       int
	settle      time.Duration
	idle        time.Duration
	fanout      int
	perEvent    int
	patchWait   time.Duration
	events      int
	concurrency int
	keep        bool
	cold        bool
	store       string
	driver      string
	replicas    int
	interval    time.Duration
	budget      int
	unchanged   bool
}

// liveWebhookSecret signs the harness's webhook events.
const liveWebhookSecret = "unfurld-load-webhook-secret"

// liveConfig is the configuration of the server under `live`: one provider
// polled every --interval (10 minutes by default) with the shipped
// defaults otherwise, with a webhook; Notion is a loopback fake; /metrics
// open on loopback, for the poll counts. Placeholders: STORAGE
// (storageConfig), DATA, UPSTREAM, NOTION, KEYS, INTERVAL.
const liveConfig = `# written by unfurld-load live
server:
  mode: development
  public_url: http://127.0.0.1
  secret_keys: KEYS
  log: {level: warn}
  metrics: {require_token: false}
STORAGE
notion:
  api_base_url: NOTION
providers:
  - name: bench
    display_name: Bench
    dev: unfurld-load
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
    live:
      poll_interval: INTERVAL
BUDGET      webhook:
        secret: ` + liveWebhookSecret + `
        header: X-Bench-Signature
        prefix: "sha256="
        uris: 'event.links'
    patterns:
      - name: item
        regex: '^https://bench\.example/items/(?<n>\d+)$'
        samples: ['https://bench.example/items/1']
        requests:
          - {name: item, url: '/items/{n}'}
        attributes:
          - {id: title, kind: title, expr: '"#" + groups.n + " " + item.title'}
          - {id: state, kind: enum, path: state}
`

// runLive builds a store of --subs subscriptions over --conns connections,
// starts `unfurld serve` on it and measures what issue 11 asks of one box:
// the time until /healthz answers, resident memory and CPU while idle
// (polling on, no requests), then a webhook fan-out (events of --per-event links
// each, --fanout links in all: time to acknowledge them and until the last
// PATCH reaches the fake Notion) and --events one-link events sent by
// --concurrency clients (time to acknowledge them all).
func runLive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unfurld-load live", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o liveOptions
	fs.StringVar(&o.bin, "bin", "", "unfurld `binary` to measure (required)")
	fs.IntVar(&o.subs, "subs", 100_000, "stored `subscriptions`")
	fs.IntVar(&o.conns, "conns", 1000, "`connections` the subscriptions are spread over (Notion paces PATCHes per connection)")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "wait after startup before the idle measurement")
	fs.DurationVar(&o.idle, "idle", 60*time.Second, "idle measurement `time`")
	fs.IntVar(&o.fanout, "fanout", 10_000, "linked `links` named by the fan-out events, --per-event per event (0 skips)")
	fs.IntVar(&o.perEvent, "per-event", 100, "`links` named by each fan-out event (--per-event 10000 --fanout 10000 sends one webhook naming 10,000 links)")
	fs.DurationVar(&o.patchWait, "patch-wait", 30*time.Minute, "how long to wait for the fan-out's PATCHes after its acknowledgement")
	fs.IntVar(&o.events, "events", 10_000, "one-link `events` (0 skips)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent clients sending the one-link events")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory and print its path")
	fs.BoolVar(&o.cold, "cold", false, "drop the database file from the page cache before starting unfurld (Linux)")
	fs.StringVar(&o.store, "store", "", "start on a copy of this database `file` (built by an earlier run with --keep and the same --subs and --conns) instead of building one")
	fs.StringVar(&o.driver, "driver", "bolt", "storage `driver`: bolt, or postgres on a throwaway cluster this run starts")
	fs.IntVar(&o.replicas, "replicas", 1, "unfurld `processes` sharing the store (more than one needs --driver postgres)")
	fs.DurationVar(&o.interval, "interval", 10*time.Minute, "the provider's poll_interval (at least 30s, the smallest unfurld accepts)")
	fs.BoolVar(&o.unchanged, "unchanged", false, "store the subscriptions with the upstream's current ETag, which it answers with 304: polls find nothing new, as in a steady state (default: every first poll finds a change and queues a PATCH)")
	fs.IntVar(&o.budget, "budget", 0, "the provider's max_requests_per_hour, for all replicas together on postgres (0: the default, 3600, far below a sweep of --subs per --interval)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.bin == "" || o.subs < 1 || o.conns < 1 || o.perEvent < 1 || o.fanout > o.subs || o.events > o.subs {
		fmt.Fprintln(stderr, "unfurld-load live: --bin is required; --subs, --conns and --per-event at least 1; --fanout and --events at most --subs")
		return exitUsage
	}
	if (o.driver != "bolt" && o.driver != "postgres") || o.replicas < 1 || (o.replicas > 1 && o.driver != "postgres") ||
		(o.store != "" && o.driver != "bolt") || o.interval < 30*time.Second || o.budget < 0 {
		fmt.Fprintln(stderr, "unfurld-load live: --driver is bolt or postgres; --replicas at least 1, more only with postgres; --store only with bolt; --interval at least 30s; --budget not negative")
		return exitUsage
	}
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "unfurld-load live: "+format+"\n", a...) }
	dir, err := os.MkdirTemp("", "unfurld-live-")
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load live: %v\n", err)
		return exitFailure
	}
	if o.keep {
		progress("keeping %s", dir)
	} else {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	pg := &pgDatabases{}
	defer pg.stop()
	cs := &children{}
	defer cs.stopAll()
	res, err := measureLive(ctx, cs, pg, o, dir, progress)
	cs.stopAll()
	pg.stop()
	if res != nil {
		res.print(stdout, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load live: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// liveResult holds the figures of one run.
type liveResult struct {
	build, startup           time.Duration
	fileBytes                int64
	idleCPU                  float64 // share of one core, all replicas together
	rss, peakRSS             int64
	rssAnon, rssFile         int64
	fanoutAck, fanoutLast    time.Duration
	fanoutPatches            int
	eventsAck                time.Duration
	eventsAcked, eventErrors int
	// window is the measured idle time; replicas what each replica did
	// in it; pgCPU the PostgreSQL server's CPU time in it.
	window   time.Duration
	replicas []replicaResult
	pgCPU    time.Duration
}

// replicaResult is one unfurld process's part of the idle window.
type replicaResult struct {
	polls      float64
	roundTrips float64 // to the database; 0 on bbolt
	cpu        time.Duration
	rss        int64
}

// polls is the polls of every replica in the window.
func (r *liveResult) polls() float64 {
	var n float64
	for _, x := range r.replicas {
		n += x.polls
	}
	return n
}

// sharesWithin reports whether every replica's share of the polls is
// within tolerance (a fraction: 0.1 is 10 %) of an even share.
func (r *liveResult) sharesWithin(tolerance float64) bool {
	total := r.polls()
	if total == 0 {
		return false
	}
	even := 1 / float64(len(r.replicas))
	for _, x := range r.replicas {
		if d := x.polls/total - even; d > tolerance*even || -d > tolerance*even {
			return false
		}
	}
	return true
}

func (r *liveResult) print(w io.Writer, o liveOptions) {
	fmt.Fprintf(w, "unfurld-load live  %s  binary %s\n", time.Now().UTC().Format(time.RFC3339), o.bin)
	budget := "default budget"
	if o.budget > 0 {
		budget = fmt.Sprintf("max_requests_per_hour %d", o.budget)
	}
	fmt.Fprintf(w, "%d subscriptions over %d connections, poll_interval %s, %s, store %s, %d replica(s)\n",
		o.subs, o.conns, o.interval, budget, o.driver, o.replicas)
	fmt.Fprintf(w, "store built or copied\t%s, %.1f MiB\n", r.build.Round(time.Millisecond), float64(r.fileBytes)/(1<<20))
	fmt.Fprintf(w, "startup to /healthz (cold page cache: %t)\t%s\n", o.cold, r.startup.Round(time.Millisecond))
	fmt.Fprintf(w, "idle CPU over %s\t%.2f %% of a core\n", o.idle, r.idleCPU*100)
	fmt.Fprintf(w, "RSS after idle\t%.1f MiB (peak %.1f MiB): %.1f MiB anonymous (heap, stacks), %.1f MiB file pages (the mapped database)\n",
		mib(r.rss), mib(r.peakRSS), mib(r.rssAnon), mib(r.rssFile))
	if total := r.polls(); len(r.replicas) > 0 {
		fmt.Fprintf(w, "polls in the idle window\t%.0f (an even schedule gives %.0f in %s)\n",
			total, float64(o.subs)*r.window.Seconds()/o.interval.Seconds(), r.window.Round(time.Second))
		for i, x := range r.replicas {
			share := 0.0
			if total > 0 {
				share = x.polls / total
			}
			fmt.Fprintf(w, "replica %d\t%.0f polls, share %.3f; CPU %.2f %% of a core; RSS %.1f MiB\n",
				i+1, x.polls, share, x.cpu.Seconds()/r.window.Seconds()*100, mib(x.rss))
		}
		if len(r.replicas) > 1 {
			verdict := "FAIL"
			if r.sharesWithin(0.1) {
				verdict = "PASS"
			}
			fmt.Fprintf(w, "each replica's share within 10%% of 1/%d\t%s\n", len(r.replicas), verdict)
		}
		if total > 0 {
			var cpu time.Duration
			var trips float64
			for _, x := range r.replicas {
				cpu += x.cpu
				trips += x.roundTrips
			}
			fmt.Fprintf(w, "CPU per polled subscription\tunfurld %s", dur(time.Duration(float64(cpu)/total)))
			if o.driver == "postgres" {
				fmt.Fprintf(w, ", PostgreSQL %s; %.1f database round trips per poll", dur(time.Duration(float64(r.pgCPU)/total)), trips/total)
			}
			fmt.Fprintln(w)
		}
	}
	if o.fanout > 0 {
		fmt.Fprintf(w, "fan-out of %d links in %d events\tacknowledged in %s; %d PATCHes, the last after %s\n",
			o.fanout, (o.fanout+o.perEvent-1)/o.perEvent, r.fanoutAck.Round(time.Millisecond), r.fanoutPatches, r.fanoutLast.Round(time.Millisecond))
	}
	if o.events > 0 {
		fmt.Fprintf(w, "%d one-link events, %d clients\tacknowledged in %s (%d accepted, %d failed)\n",
			o.events, o.concurrency, r.eventsAck.Round(time.Millisecond), r.eventsAcked, r.eventErrors)
	}
}

// writeLiveConfig writes the configuration of replica i (its own data
// directory: development secrets are per directory) and returns its path.
func writeLiveConfig(dir string, i int, dsn, upstream, notion, keys string, o liveOptions) (string, error) {
	data := dir
	if dsn != "" {
		data = filepath.Join(dir, "r"+strconv.Itoa(i+1))
		if err := os.MkdirAll(data, 0o700); err != nil {
			return "", err
		}
	}
	cfg := strings.NewReplacer("STORAGE", storageConfig(dsn)).Replace(liveConfig)
	budget := ""
	if o.budget > 0 {
		budget = "      max_requests_per_hour: " + strconv.Itoa(o.budget) + "\n"
	}
	cfg = strings.NewReplacer("DATA", data, "UPSTREAM", upstream, "NOTION", notion, "KEYS", keys, "INTERVAL", o.interval.String(), "BUDGET", budget).Replace(cfg)
	path := filepath.Join(data, "config.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func measureLive(ctx context.Context, cs *children, pg *pgDatabases, o liveOptions, dir string, progress func(string, ...any)) (*liveResult, error) {
	up, err := newLiveUpstream()
	if err != nil {
		return nil, err
	}
	defer up.close()
	nt, err := newFakeNotion()
	if err != nil {
		return nil, err
	}
	defer nt.close()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys := "k1:" + base64.StdEncoding.EncodeToString(key)
	res := &liveResult{}
	start := time.Now()
	var dsn string
	switch {
	case o.driver == "postgres":
		progress("starting PostgreSQL and building a store of %d subscriptions", o.subs)
		if dsn, err = pg.database(ctx); err != nil {
			return nil, err
		}
		if err := buildPostgresStore(ctx, dsn, keys, o); err != nil {
			return nil, err
		}
	case o.store != "":
		progress("copying %s", o.store)
		if err := copyFile(o.store, filepath.Join(dir, "unfurld.db")); err != nil {
			return nil, err
		}
		// The copy's sealed tokens need the keys it was built with.
		b, err := os.ReadFile(filepath.Join(filepath.Dir(o.store), "keys"))
		if err != nil {
			return nil, fmt.Errorf("the keys beside %s: %w", o.store, err)
		}
		keys = strings.TrimSpace(string(b))
	default:
		progress("building a store of %d subscriptions", o.subs)
		if err := buildLiveStore(ctx, filepath.Join(dir, "unfurld.db"), keys, o); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "keys"), []byte(keys), 0o600); err != nil {
			return nil, err
		}
	}
	res.build = time.Since(start)
	if o.cold && dsn == "" {
		if err := dropCached(filepath.Join(dir, "unfurld.db")); err != nil {
			return nil, fmt.Errorf("--cold: %w", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "unfurld.db")); err == nil {
		res.fileBytes = fi.Size()
	}
	progress("starting %d unfurld process(es)", o.replicas)
	start = time.Now()
	var replicas []*child
	for i := range o.replicas {
		cfgPath, err := writeLiveConfig(dir, i, dsn, up.url, nt.url, keys, o)
		if err != nil {
			return nil, err
		}
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c, err := startChild(fmt.Sprintf("unfurld (live, replica %d)", i+1), addr, o.bin, "serve", "--config", cfgPath, "--listen", addr)
		if err != nil {
			return nil, err
		}
		cs.add(c)
		if err := c.waitHealthy(ctx, 5*time.Minute); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, c.stderr.String())
		}
		if i == 0 {
			res.startup = time.Since(start)
		}
		replicas = append(replicas, c)
	}
	c := replicas[0]
	addr := c.addr
	pid := c.cmd.Process.Pid

	progress("settling %s, then idle for %s", o.settle, o.idle)
	if !sleepCtx(ctx, o.settle) {
		return res, ctx.Err()
	}
	before := make([]replicaResult, len(replicas))
	for i, r := range replicas {
		polls, trips, err := pollCount(ctx, r.addr)
		if err != nil {
			return res, err
		}
		cpu, _ := cpuTime(r.cmd.Process.Pid)
		before[i] = replicaResult{polls: polls, roundTrips: trips, cpu: cpu}
	}
	pg0 := cpuTimes(pg.pids())
	t0 := time.Now()
	if !sleepCtx(ctx, o.idle) {
		return res, ctx.Err()
	}
	res.window = time.Since(t0)
	for pid, c1 := range cpuTimes(pg.pids()) {
		res.pgCPU += c1 - pg0[pid]
	}
	var cpuAll time.Duration
	for i, r := range replicas {
		polls, trips, err := pollCount(ctx, r.addr)
		if err != nil {
			return res, err
		}
		cpu, _ := cpuTime(r.cmd.Process.Pid)
		rss, _ := currentRSS(r.cmd.Process.Pid)
		x := replicaResult{polls: polls - before[i].polls, roundTrips: trips - before[i].roundTrips, cpu: cpu - before[i].cpu, rss: rss}
		res.replicas = append(res.replicas, x)
		cpuAll += x.cpu
	}
	res.idleCPU = cpuAll.Seconds() / res.window.Seconds()
	res.rss, _ = currentRSS(pid)
	res.peakRSS, _ = peakRSS(pid)
	res.rssAnon, _ = statusBytes(pid, "RssAnon:")
	res.rssFile, _ = statusBytes(pid, "RssFile:")

	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: loopbackDialer, MaxIdleConnsPerHost: o.concurrency}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	hook := "http://" + addr + "/providers/bench/webhook"
	if o.fanout > 0 {
		progress("fan-out: %d links in events of %d", o.fanout, o.perEvent)
		// Every item changes upstream, so each refresh queues a PATCH.
		up.version.Add(1)
		base := nt.count()
		start = time.Now()
		for first := 0; first < o.fanout; first += o.perEvent {
			var links []string
			for i := first; i < min(first+o.perEvent, o.fanout); i++ {
				links = append(links, liveURI(i))
			}
			if err := sendEvent(ctx, hc, hook, links); err != nil {
				return res, fmt.Errorf("fan-out event: %w", err)
			}
		}
		res.fanoutAck = time.Since(start)
		progress("fan-out acknowledged in %s", res.fanoutAck.Round(time.Millisecond))
		// The PATCHes leave paced per connection; wait until they stop.
		deadline := time.Now().Add(o.patchWait)
		for nt.count()-base < o.fanout && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
		}
		res.fanoutPatches = nt.count() - base
		res.fanoutLast = nt.last().Sub(start)
	}
	if o.events > 0 {
		progress("%d one-link events from %d clients", o.events, o.concurrency)
		var next, acked, failed atomic.Int64
		start = time.Now()
		var wg sync.WaitGroup
		for range o.concurrency {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= o.events || ctx.Err() != nil {
						return
					}
					// From the end of the range, away from the fan-out's links.
					if err := sendEvent(ctx, hc, hook, []string{liveURI(o.subs - 1 - i)}); err != nil {
						failed.Add(1)
						continue
					}
					acked.Add(1)
				}
			})
		}
		wg.Wait()
		res.eventsAck = time.Since(start)
		res.eventsAcked, res.eventErrors = int(acked.Load()), int(failed.Load())
	}
	return res, nil
}

// copyFile copies the file at from to to.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}

// mib is n bytes in MiB.
func mib(n int64) float64 { return float64(n) / (1 << 20) }

// liveURI is the i-th subscribed link.
func liveURI(i int) string { return "https://bench.example/items/" + strconv.Itoa(i) }

// buildLiveStore writes the connections, each with a sealed Notion token,
// and the subscriptions, round robin over the connections, in batches.
// The subscriptions' attribute hash matches nothing the upstream serves,
// as if they were unfurled long ago.
func buildLiveStore(ctx context.Context, path, keys string, o liveOptions) error {
	now := time.Now().UTC()
	conns, err := liveConnections(keys, o, now)
	if err != nil {
		return err
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	ids := make([]string, len(conns))
	for i, c := range conns {
		if err := st.CreateConnection(ctx, c); err != nil {
			return err
		}
		ids[i] = c.ID
	}
	const batch = 10_000
	subs := make([]store.Subscription, 0, batch)
	for i := range o.subs {
		subs = append(subs, liveSub(i, ids, now, o.unchanged))
		if len(subs) == batch || i == o.subs-1 {
			if _, err := st.PutSubscriptions(ctx, subs); err != nil {
				return err
			}
			subs = subs[:0]
		}
	}
	return nil
}

// buildPostgresStore writes what buildLiveStore writes into the empty
// PostgreSQL database at dsn, with one COPY per table (store.Importer):
// minutes faster than batches of puts at 300,000 subscriptions.
func buildPostgresStore(ctx context.Context, dsn, keys string, o liveOptions) error {
	now := time.Now().UTC()
	conns, err := liveConnections(keys, o, now)
	if err != nil {
		return err
	}
	ids := make([]string, len(conns))
	for i, c := range conns {
		ids[i] = c.ID
	}
	subs := make([]store.Subscription, o.subs)
	for i := range subs {
		subs[i] = liveSub(i, ids, now, o.unchanged)
	}
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	return st.Import(ctx, store.Snapshot{Connections: conns, Subscriptions: subs})
}

// liveConnections are --conns active connections, each with a sealed
// Notion token.
func liveConnections(keys string, o liveOptions, now time.Time) ([]store.Connection, error) {
	kr, err := sealing.ParseKeyring(keys)
	if err != nil {
		return nil, err
	}
	out := make([]store.Connection, o.conns)
	for i := range out {
		c := store.Connection{
			ID: issuer.NewID(), Provider: "bench", AccountKey: "load:" + strconv.Itoa(i), AccountName: "load " + strconv.Itoa(i),
			Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
		}
		c.NotionToken, err = sealing.SealConnectionField(kr, c, sealing.FieldNotionToken, []byte("secret_load_"+strconv.Itoa(i)))
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// liveSub is the i-th subscription, on connection i modulo the
// connections; unchanged gives it the upstream's first ETag.
func liveSub(i int, ids []string, now time.Time, unchanged bool) store.Subscription {
	sub := store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: "bench", ConnectionID: ids[i%len(ids)], URI: liveURI(i)},
		AttrHash:        "unfurled-long-ago", CreatedAt: now, UpdatedAt: now,
	}
	if unchanged {
		sub.ETag = liveETag(0)
	}
	return sub
}

// liveETag is the upstream's ETag at version v.
func liveETag(v int64) string { return `"v` + strconv.FormatInt(v, 10) + `"` }

// sendEvent posts a signed webhook event naming links and wants 202.
func sendEvent(ctx context.Context, hc *http.Client, url string, links []string) error {
	body, err := json.Marshal(map[string]any{"links": links})
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(liveWebhookSecret))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bench-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// liveUpstream serves every item; its title and ETag carry version, so a
// bump changes every preview, and it answers 304 to a request that names
// the current ETag.
type liveUpstream struct {
	srv     *http.Server
	url     string
	version atomic.Int64
}

func newLiveUpstream() (*liveUpstream, error) {
	u := &liveUpstream{}
	var err error
	u.srv, u.url, err = serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := u.version.Load()
		w.Header().Set("ETag", liveETag(v))
		if r.Header.Get("If-None-Match") == liveETag(v) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"title":"item v%d","state":"open"}`, v)
	}))
	return u, err
}

func (u *liveUpstream) close() { _ = u.srv.Close() }

// fakeNotion accepts every PATCH /v1/external/object and counts them.
type fakeNotion struct {
	srv    *http.Server
	url    string
	mu     sync.Mutex
	n      int
	lastAt time.Time
}

func newFakeNotion() (*fakeNotion, error) {
	f := &fakeNotion{}
	var err error
	f.srv, f.url, err = serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/external/object") {
			f.mu.Lock()
			f.n++
			f.lastAt = time.Now()
			f.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"external_object"}`)
	}))
	return f, err
}

func (f *fakeNotion) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fakeNotion) last() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAt
}

func (f *fakeNotion) close() { _ = f.srv.Close() }

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// sleepCtx sleeps for d unless ctx ends first, and says whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
