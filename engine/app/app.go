// Package app assembles a running unfurld from a loaded configuration: the
// keyring, the Notion client, the token issuer, the connection flow and
// the HTTP server over one store and one provider registry. cmd/unfurld
// serve and the end-to-end tests build the same thing through New, so the
// tests exercise the wiring the binary runs.
package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unfurld/unfurld/engine/canary"
	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
)

// sweepEvery is how often expired flows, codes and tokens are removed
// (TH-12, TH-17).
const sweepEvery = time.Minute

// retainConsumed keeps spent codes and refresh tokens this long, so that a
// replay within it revokes its grant (TH-16, TH-23) rather than meeting
// "not found".
const retainConsumed = 7 * 24 * time.Hour

// Options are the parts New does not build itself.
type Options struct {
	Config   *config.Config
	Registry *provider.Registry
	Store    store.Store
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Clock drives live updates (timers too); nil is the wall clock.
	// Tests inject a fake.
	Clock clock.Clock
	// Notion are base options for the Notion client (tests set HTTPClient);
	// its URL, versions and timeout come from the config.
	Notion notion.ClientOptions
	// Metrics, when set, is fed by every component and served at
	// /metrics. cmd builds it before the providers, whose observer it
	// also is (provider.Options.Observer). nil collects nothing.
	Metrics *metrics.Metrics
	// Load loads the configuration file again for Reload, through
	// compiled.Load, with the secrets development mode generates filled
	// in; nil refuses every reload.
	Load func() (*compiled.Config, config.Errors)
	// Check, when set, is the store's integrity check, which Open then
	// skipped: Run starts it in the background, so the server listens at
	// once however large the file; a failure is logged as an error and
	// makes /healthz degraded (docs/operations.md, Integrity check).
	Check func(ctx context.Context) error
}

// App is an assembled unfurld.
type App struct {
	Server  *server.Server
	Connect *connect.Service
	Issuer  *issuer.Issuer
	Keyring *sealing.Keyring
	Notion  *notion.Client
	// Deliverer, Refresher and Poller keep previews current (issue 4).
	// A reload replaces the Poller (its schedules are per provider); read
	// it with CurrentPoller while Run is running.
	Deliverer *live.Deliverer
	Refresher *live.Refresher
	Poller    *live.Poller
	// Resealer moves records sealed with older keys to the primary key
	// (keys.go).
	Resealer *sealing.Resealer
	// Canary runs the providers' canaries on their canary.interval.
	Canary *canary.Scheduler
	// Store is the one store handle of the process, wrapping
	// Options.Store: the server, the live updates, the connection flow,
	// the issuer, the resealer and the status report all read and write
	// through it, so each sees what the others acknowledged and its
	// caches see every write. Closing it closes Options.Store.
	Store *cached.Store

	log   *slog.Logger
	now   func() time.Time
	clock clock.Clock
	// owner names this process in the store's leases.
	owner string
	// budget is the store as it keeps the polling budgets for every
	// replica; nil when this process keeps them.
	budget store.SharedPollBudget
	// check is Options.Check; checkErr holds its failure.
	check    func(ctx context.Context) error
	checkErr atomic.Pointer[error]
	reg      *provider.Registry
	load     func() (*compiled.Config, config.Errors)

	// reloadMu serializes reloads; running is the configuration in use.
	reloadMu sync.Mutex
	running  *config.Config
	// pollerMu guards Poller and pollerSwapped, which Reload closes to
	// make Run restart polling with the new Poller.
	pollerMu      sync.Mutex
	pollerSwapped chan struct{}
}

// New builds the app. The config must have its secrets filled (FillDevSecrets
// in development mode); a missing or malformed sealing key refuses to
// start with a message that never prints the key (TH-42).
func New(opts Options) (*App, error) {
	cfg := opts.Config
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if cfg.Server.SecretKeys.IsZero() {
		// Name the variable the file reads, if it reads one.
		set := "set it, usually from ${UNFURLD_SECRET_KEYS}"
		if src, ok := cfg.Sources["server.secret_keys"]; ok && src.Kind == config.SourceEnv {
			set = "the environment variable " + src.Env + " it reads is empty"
		}
		return nil, fmt.Errorf("server.secret_keys is empty: %s (see docs/operations.md#sealing-keys)", set)
	}
	// The same checks `unfurld validate` runs (compiled.Check); here they can only
	// fail on what changed since: secrets generated in development mode.
	pre, errs := compiled.Prepare(cfg, opts.Registry, opts.Notion, opts.Now)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	kr, nc := pre.Keyring, pre.Notion
	m := opts.Metrics
	base := opts.Store
	if m != nil {
		// Timed under the cache: what is counted is what reached the
		// storage engine.
		base = store.Observe(base, storeObserver(m))
	}
	// A store several replicas share reports their writes, so that this
	// process's caches drop what another replica changed (cached/changes.go).
	// It is taken from the store itself: the metrics wrapper hides it.
	feed, _ := opts.Store.(store.ChangeFeed)
	st := cached.New(base, cached.Options{Now: opts.Now, Changes: feed})
	iss := &issuer.Issuer{Store: st, Keyring: kr, Now: opts.Now}
	cs, err := connect.New(connect.Options{
		Store: st, Keyring: kr, Registry: opts.Registry, Notion: nc, Codes: iss,
		PublicURL: cfg.Server.PublicURL, RedirectURIs: cfg.Notion.RedirectURIs,
		Logger: opts.Logger, Now: opts.Now, Observe: oauthObserver(m),
	})
	if err != nil {
		return nil, err
	}
	// Live updates (protocol 7, issue 4): the deliverer drains the
	// durable outbox to Notion; the refresher re-fetches subscribed links
	// and queues what changed; the poller and the webhook route decide
	// when.
	clock := opts.Clock
	// An outbox several replicas drain is claimed with leases and paced
	// in the store (live/dispatch.go); as with the feed, the store
	// itself says whether it is one.
	shared, _ := opts.Store.(store.SharedOutbox)
	// One name for this process in the store's leases, kept across
	// reloads, so that a reloaded poller owns what the last one claimed
	// and replicas on one database share the work (issue 11).
	owner := leaseOwner()
	del, err := live.New(live.Options{Store: st, Shared: shared, Notion: nc, Keyring: kr, Logger: opts.Logger, Clock: clock, OnPush: pushObserver(m)})
	if err != nil {
		return nil, fmt.Errorf("live delivery: %w", err)
	}
	ref, err := live.NewRefresher(live.RefresherOptions{
		Store: st, Registry: opts.Registry, Credentials: cs, Pusher: del, Logger: opts.Logger, Clock: clock,
		OnRefresh: refreshObserver(m), Owner: owner,
	})
	if err != nil {
		return nil, fmt.Errorf("live refresh: %w", err)
	}
	// Likewise a store several replicas poll keeps the request budgets,
	// so that max_requests_per_hour holds for them together.
	budget, _ := opts.Store.(store.SharedPollBudget)
	poll, err := live.NewPoller(live.PollerOptions{Refresher: ref, Store: st, Budget: budget, Registry: opts.Registry, Logger: opts.Logger, Clock: clock, Owner: owner})
	if err != nil {
		return nil, fmt.Errorf("live polling: %w", err)
	}
	sched, err := newCanaries(cfg, opts)
	if err != nil {
		return nil, err
	}
	a := &App{
		Canary:  sched,
		Connect: cs, Issuer: iss, Keyring: kr, Notion: nc,
		Deliverer: del, Refresher: ref, Poller: poll, Store: st,
		log: opts.Logger, now: opts.Now, clock: clock, owner: owner, check: opts.Check, budget: budget,
		reg: opts.Registry, load: opts.Load, running: cfg, pollerSwapped: make(chan struct{}),
	}
	a.Resealer = sealing.NewResealer(sealing.ResealerOptions{Store: st, Keyring: kr, Logger: opts.Logger, Now: opts.Now})
	scfg := server.Config{
		Settings: cfg.Server, Store: st, Registry: opts.Registry,
		Connect: cs, Keyring: kr, Logger: opts.Logger, Now: opts.Now,
		Live: ref, LiveStats: a.liveStats, Reload: a.reloadRoute(), Integrity: a.integrity,
	}
	if m != nil {
		scfg.Metrics, scfg.MetricsHandler = m, m.Handler()
		m.SetLive(a.liveSource())
	}
	a.Server = server.New(scfg)
	return a, nil
}

// newCanaries builds the canary scheduler. The baseline is read only when
// some provider is scheduled: canary.baseline alone may serve
// `unfurld canary` only.
func newCanaries(cfg *config.Config, opts Options) (*canary.Scheduler, error) {
	runner := canary.New(canary.Options{
		Registry: opts.Registry, Logger: opts.Logger, Clock: opts.Clock, Timeout: cfg.Server.UnfurlTimeout.D(),
	})
	sopts := canary.SchedulerOptions{Runner: runner, Registry: opts.Registry, Clock: opts.Clock}
	if m := opts.Metrics; m != nil {
		// Every scheduled run replaces the gauges of the providers it ran;
		// a skipped provider (no canary credential) keeps none.
		sopts.OnRun = func(r *canary.Report) {
			for _, p := range r.Providers {
				if p.Skipped != "" {
					continue
				}
				ok, changed, failed := p.Counts()
				m.Canary(p.Provider, ok, changed, failed, p.At)
			}
		}
	}
	scheduled := false
	for _, p := range opts.Registry.All() {
		scheduled = scheduled || p.Config.Canary.Interval > 0
	}
	if scheduled && cfg.CanaryBaseline() != "" {
		base, err := canary.ReadBaseline(cfg.CanaryBaseline())
		if err != nil {
			return nil, fmt.Errorf("%w (record it with unfurld canary --config FILE --record FILE)", err)
		}
		sopts.Baseline = base
	}
	return canary.NewScheduler(sopts), nil
}

// liveStats is the in-memory part of the admin status report.
func (a *App) liveStats() *status.Live {
	l := &status.Live{Delivery: map[string]any{}, Polling: map[string]any{}, Canary: map[string]any{}}
	for p, s := range a.Canary.Summaries() {
		l.Canary[p] = s
	}
	for p, s := range a.Deliverer.Stats() {
		l.Delivery[p] = s
	}
	for p, s := range a.CurrentPoller().Stats() {
		l.Polling[p] = s
	}
	return l
}

// Sweep removes expired pending flows, codes and tokens once, and the
// subscriptions live.expire_after lets go.
func (a *App) Sweep(ctx context.Context) {
	res, err := a.Store.Sweep(ctx, a.now(), retainConsumed)
	if err != nil {
		a.log.WarnContext(ctx, "sweep", "err", err)
		return
	}
	if res.Flows+res.Tokens > 0 {
		a.log.DebugContext(ctx, "sweep", "flows", res.Flows, "tokens", res.Tokens)
	}
	a.expire(ctx)
}

// expirePage is how many subscriptions one expiry write deletes.
const expirePage = 1000

// expire stops tracking, for each provider with live.expire_after, the
// links nobody has unfurled for that long (docs/live-previews.md,
// Expiry), a page at a time. Sweep runs it every minute, so a backlog is
// worked through in pages without holding a write for long.
func (a *App) expire(ctx context.Context) {
	now := a.now()
	for _, p := range a.reg.All() {
		after := p.Config.Live.ExpireAfter.D()
		if after <= 0 {
			continue
		}
		n := 0
		for ctx.Err() == nil {
			keys, err := a.Store.ExpireSubscriptions(ctx, p.Name, now.Add(-after), expirePage)
			if err != nil {
				a.log.WarnContext(ctx, "live expiry", "provider", p.Name, "err", err)
				break
			}
			n += len(keys)
			if len(keys) < expirePage {
				break
			}
		}
		if n > 0 {
			a.log.InfoContext(ctx, "live expiry: links no longer tracked", "provider", p.Name, "links", n, "unfurled_before", now.Add(-after))
		}
	}
}

// Run does the background work until ctx ends: live delivery, refresh
// and polling, the periodic sweep, the scheduled canaries, and the
// re-seal of records sealed with older keys (which ends once they are
// all moved). It returns when
// all of them have stopped.
func (a *App) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){a.checkStore, a.Deliverer.Run, a.Refresher.Run, a.pollLoop, a.sweepLoop, a.Resealer.Run, a.Canary.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	wg.Wait()
}

func (a *App) sweepLoop(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.Sweep(ctx)
		}
	}
}

// integrity is the background integrity check's failure, or nil while
// it runs, once it passed, or when there is none.
func (a *App) integrity() error {
	if err := a.checkErr.Load(); err != nil {
		return *err
	}
	return nil
}

// checkStore runs the store's integrity check once, after the server
// started listening; a failure is logged loudly and kept for /healthz.
// The check reads every page of the file, so it takes seconds for large
// stores, during which the server already answers: the trade-off of a
// fast start (docs/operations.md, Integrity check).
func (a *App) checkStore(ctx context.Context) {
	if a.check == nil {
		return
	}
	start := time.Now()
	err := a.check(ctx)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		a.checkErr.Store(&err)
		a.log.ErrorContext(ctx, "STORE INTEGRITY CHECK FAILED: stop the server, keep a copy of the file and restore a backup (docs/operations.md, Integrity check)", "err", err)
	default:
		a.log.InfoContext(ctx, "store integrity check passed", "duration", time.Since(start).Round(time.Millisecond))
	}
}

// leaseOwner names this process in the store's leases: the host and the
// process id, which an operator recognises, and random text, which keeps
// two processes apart even in containers that all run as pid 1.
func leaseOwner() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unfurld"
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}
