package live

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream"
)

// Defaults applied by NewPoller to zero PollerOptions fields.
const (
	// DefaultSyncInterval is how often the poller counts the provider's
	// subscriptions again (the count sizes its waves) and an idle
	// provider looks for new ones.
	DefaultSyncInterval = time.Minute
	// DefaultPollLease is how long a claimed poll stays leased to this
	// poller: longer than a wave takes, short enough that another
	// replica takes over soon after this one dies.
	DefaultPollLease = 2 * time.Minute
	// DefaultPollBaseBackoff is the provider's pause after a first 429
	// or 5xx without Retry-After; it doubles with each further one.
	DefaultPollBaseBackoff = 5 * time.Second
	// DefaultPollMaxBackoff caps that pause.
	DefaultPollMaxBackoff = 15 * time.Minute
)

// upstreamReserve keeps 1/upstreamReserve of an upstream's rate limit for
// unfurls: polling pauses until the reset when fewer requests than that
// remain, so that the previews people paste still work (an anonymous
// GitHub has 60 requests an hour for both).
const upstreamReserve = 5

// SubscriptionRefresher refreshes one subscription; *Refresher is one.
type SubscriptionRefresher interface {
	Refresh(ctx context.Context, k store.SubscriptionKey, trigger string) (Outcome, error)
}

// PollSchedule is the part of the store's schedule (store.Schedule) the
// Poller works from: it claims due subscriptions in pages and writes
// their next poll times back, one call per wave, so that its memory
// depends on the page size, not on the number of subscriptions.
type PollSchedule interface {
	ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, lease time.Duration, limit int) ([]store.Subscription, error)
	NextPollDue(ctx context.Context, provider string, now time.Time) (time.Time, bool, error)
	SchedulePolls(ctx context.Context, owner string, next []store.PollSlot) (int, error)
	ScheduleCounts(ctx context.Context, provider string, now time.Time) (store.ScheduleCounts, error)
	// ListSubscriptions streams a provider's subscriptions, for the one
	// pass that moves polls into a shortened interval.
	ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error
}

// spreadPage is how many never-scheduled subscriptions one claim hands
// out while the poller spreads their first polls, which costs no request
// and so needs no worker.
const spreadPage = 1000

// scheduleTimeout bounds the write that releases a wave's leases when
// the poller stops.
const scheduleTimeout = 5 * time.Second

// PollerOptions configure NewPoller. Refresher, Store and Registry are
// required.
type PollerOptions struct {
	Refresher SubscriptionRefresher
	Store     PollSchedule
	// Owner names this process in the schedule's leases, so that
	// replicas on one database share the polls; the App passes one per
	// process. Empty is a random one.
	Owner string
	// Lease is how long a claimed poll stays this poller's. Default
	// DefaultPollLease.
	Lease time.Duration
	// PreviousIntervals are the poll intervals of the poller this one
	// replaces after a reload (Poller.Intervals). A provider whose
	// interval shrank has the polls scheduled beyond its new interval
	// moved into it, at random points, as it starts.
	PreviousIntervals map[string]time.Duration
	// Registry gives the providers; those with live updates on and a
	// poll_interval above zero are polled (config.Live).
	Registry *provider.Registry
	// Logger receives polling failures; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock clock.Clock
	// Rand returns a number in [0, 1) for the spread of first polls and
	// backoff jitter; nil is math/rand/v2. It is called under a lock.
	Rand func() float64
	// Budget keeps the providers' request budgets
	// (max_requests_per_hour) in the store, shared by every replica
	// polling on it; nil keeps them in this process, right for a store
	// only this process polls (bolt, memory). The App passes the store
	// when it is one.
	Budget store.SharedPollBudget
	// MaxWorkers caps the refreshes of one provider at once; within it
	// their number adapts (pollWorkers). Default DefaultMaxPollWorkers.
	MaxWorkers int
	// SyncInterval is how often the subscriptions are counted again.
	SyncInterval time.Duration
	// BaseBackoff, MaxBackoff and Jitter shape the pause after 429s and
	// 5xx without Retry-After: BaseBackoff*2^(n-1) after n in a row, at
	// most MaxBackoff, times a factor in [1-Jitter, 1+Jitter).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	Jitter      float64
}

// PollStats describe one provider's polling, for the status endpoint
// (issue 4 item 5). They are kept in memory since the start of the
// process; each subscription's last refresh is in the store.
type PollStats struct {
	// Interval is the provider's poll_interval.
	Interval time.Duration
	// Subscriptions is how many subscriptions are scheduled, as of
	// LastSyncAt.
	Subscriptions int
	// LastSyncAt is when the subscriptions were last counted.
	LastSyncAt time.Time
	// LastPollAt is when the last refresh finished.
	LastPollAt time.Time
	// Polls, Changed and Failures count refreshes, those that queued a
	// PATCH, and the transient upstream failures among them.
	Polls, Changed, Failures int
	// ConsecutiveFailures is the current run of transient failures: the
	// backoff exponent.
	ConsecutiveFailures int
	// LastFailureAt and LastError describe the last failure.
	LastFailureAt time.Time
	LastError     string
	// PausedUntil is when polling resumes after a Retry-After, a spent
	// rate limit or a backoff; zero or past when it runs.
	PausedUntil time.Time
	// Deferred counts the times the request budget held due polls back.
	Deferred int
	// Workers is how many refreshes run at once: enough to poll every
	// subscription within Interval at the measured Latency and
	// WaveOverhead, within the request budget, the upstream's rate limit
	// and the maximum.
	Workers int
	// Latency is the running mean of one refresh's duration.
	Latency time.Duration
	// WaveOverhead is the running mean of what a wave costs besides its
	// slowest refresh: the claim, the schedule write and the rest.
	WaveOverhead time.Duration
	// Budgeted is true when the provider has max_requests_per_hour;
	// BudgetLeft is then the requests it could still send, as of its
	// last poll.
	Budgeted   bool
	BudgetLeft float64
	// RateLimitKnown is true once the upstream announced a rate limit;
	// RateLimitRemaining is then what it said was left.
	RateLimitKnown     bool
	RateLimitRemaining int
}

// Poller re-fetches every subscription of each polling provider once per
// poll_interval (issue 4 item 2). The schedule lives in the store
// (store.Schedule): the poller claims the due subscriptions in pages,
// refreshes them in waves and writes their next poll times back in one
// call per wave, so it holds a page, not every subscription (issue 11).
// First polls of never-scheduled subscriptions are spread over the
// interval with jitter, so an upgrade or a batch of new links does not
// fetch everything at once;
// each provider stays within max_requests_per_hour; a Retry-After, or a
// rate limit with nothing remaining, pauses the provider until the
// upstream said; 429s and 5xx without one pause it with exponential
// backoff. Time comes from the Clock, so tests drive it without sleeping.
type Poller struct {
	refresh     SubscriptionRefresher
	st          PollSchedule
	shared      store.SharedPollBudget
	owner       string
	lease       time.Duration
	log         *slog.Logger
	clock       clock.Clock
	randMu      sync.Mutex
	rand        func() float64
	maxWorkers  int
	syncEvery   time.Duration
	baseBackoff time.Duration
	maxBackoff  time.Duration
	jitter      float64
	providers   []*providerPoll

	statsMu sync.Mutex
}

// providerPoll is one provider's schedule and limits.
type providerPoll struct {
	name     string
	interval time.Duration
	// mu serializes the polls of the provider: Run's loop and PollDue.
	mu       sync.Mutex
	budget   *budget
	subs     int
	nextSync time.Time
	// spreading is true until a claim finds no never-scheduled
	// subscription: claims are then pages of spreadPage.
	spreading bool
	// rebase is true until the polls scheduled beyond a shortened
	// interval have been moved into it.
	rebase      bool
	pausedUntil time.Time
	failures    int
	// debt is what the provider's polls sent beyond the tokens of its
	// shared reservations, settled with the next one (negative: unused
	// tokens given back).
	debt float64
	// latency and reqs are running means of a refresh's duration in
	// seconds and of the requests it sends; overhead is the running mean,
	// in seconds, of a wave's time from claim to schedule written less
	// its slowest refresh; rateLimit is the upstream's last announced
	// rate limit. They size the waves (pollWorkers).
	latency   float64
	reqs      float64
	overhead  float64
	rateLimit upstream.RateLimit
	// stats are guarded by Poller.statsMu.
	stats PollStats
}

// NewPoller checks opts, applies defaults and prepares a schedule for each
// polling provider. Start it with Run.
func NewPoller(opts PollerOptions) (*Poller, error) {
	switch {
	case opts.Refresher == nil:
		return nil, errors.New("live: poller: no refresher")
	case opts.Store == nil:
		return nil, errors.New("live: poller: no store")
	case opts.Registry == nil:
		return nil, errors.New("live: poller: no provider registry")
	case opts.MaxWorkers < 0, opts.SyncInterval < 0, opts.Lease < 0, opts.BaseBackoff < 0, opts.MaxBackoff < 0:
		return nil, errors.New("live: poller: negative option")
	case opts.Jitter < 0 || opts.Jitter >= 1:
		return nil, fmt.Errorf("live: poller: jitter %g outside [0, 1)", opts.Jitter)
	}
	p := &Poller{
		refresh: opts.Refresher, st: opts.Store, shared: opts.Budget, owner: opts.Owner, log: opts.Logger, clock: opts.Clock, rand: opts.Rand,
		lease:       orDefault(opts.Lease, DefaultPollLease),
		maxWorkers:  orDefault(opts.MaxWorkers, DefaultMaxPollWorkers),
		syncEvery:   orDefault(opts.SyncInterval, DefaultSyncInterval),
		baseBackoff: orDefault(opts.BaseBackoff, DefaultPollBaseBackoff),
		maxBackoff:  orDefault(opts.MaxBackoff, DefaultPollMaxBackoff),
		jitter:      orDefault(opts.Jitter, DefaultJitter),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = clock.Real{}
	}
	if p.rand == nil {
		p.rand = rand.Float64
	}
	if p.owner == "" {
		p.owner = "poller-" + crand.Text()
	}
	for _, pv := range opts.Registry.All() {
		live := pv.Config.Live
		if !live.IsEnabled() || live.PollInterval.D() <= 0 {
			continue
		}
		pp := &providerPoll{
			name: pv.Name, interval: live.PollInterval.D(), budget: newBudget(live.MaxRequestsPerHour), spreading: true,
		}
		if prev, ok := opts.PreviousIntervals[pv.Name]; ok && prev > pp.interval {
			pp.rebase = true
		}
		pp.stats.Interval = pp.interval
		p.providers = append(p.providers, pp)
	}
	return p, nil
}

// Providers names the polled providers, in configuration order.
func (p *Poller) Providers() []string {
	out := make([]string, len(p.providers))
	for i, pp := range p.providers {
		out[i] = pp.name
	}
	return out
}

// Intervals returns the poll interval of every polled provider, for the
// poller that replaces this one (PollerOptions.PreviousIntervals).
func (p *Poller) Intervals() map[string]time.Duration {
	out := make(map[string]time.Duration, len(p.providers))
	for _, pp := range p.providers {
		out[pp.name] = pp.interval
	}
	return out
}

// Stats returns a copy of the polling statistics of every polled provider.
func (p *Poller) Stats() map[string]PollStats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	out := make(map[string]PollStats, len(p.providers))
	for _, pp := range p.providers {
		out[pp.name] = pp.stats
	}
	return out
}

// Run polls until ctx ends, one loop per provider, each sleeping until
// its next poll falls due. It returns at once when no provider polls.
func (p *Poller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, pp := range p.providers {
		wg.Go(func() { p.runProvider(ctx, pp) })
	}
	wg.Wait()
}

func (p *Poller) runProvider(ctx context.Context, pp *providerPoll) {
	for {
		next, err := p.pollProvider(ctx, pp)
		if ctx.Err() != nil {
			return
		}
		wait := max(next.Sub(p.clock.Now()), 0)
		if err != nil {
			// The store is failing: try again after a pause rather than
			// in a loop.
			p.log.ErrorContext(ctx, "live poll", "provider", pp.name, "err", err)
			wait = p.baseBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-p.clock.After(wait):
		}
	}
}

// PollDue runs, for every polled provider, the refreshes due now as far
// as its budget and pauses allow, and returns when the next one falls
// due. Run calls the same per provider; tests call it between steps of a
// fake clock. An error is a store failure.
func (p *Poller) PollDue(ctx context.Context) (time.Time, error) {
	var next time.Time
	var errs []error
	for _, pp := range p.providers {
		at, err := p.pollProvider(ctx, pp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next = earliest(next, at)
	}
	return next, errors.Join(errs...)
}

// pollProvider counts the subscriptions when a sync is due, then claims
// due subscriptions and refreshes them in waves (workers) until none is
// due, the budget is spent or a pause begins; each wave's next poll
// times go back to the store in one call. It returns when it should run
// next.
func (p *Poller) pollProvider(ctx context.Context, pp *providerPoll) (time.Time, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	now := p.clock.Now()
	if pp.rebase {
		if err := p.rebase(ctx, pp, now); err != nil {
			return time.Time{}, err
		}
		pp.rebase = false
	}
	if !now.Before(pp.nextSync) {
		c, err := p.st.ScheduleCounts(ctx, pp.name, now)
		if err != nil {
			return time.Time{}, fmt.Errorf("live poll %s: %w", pp.name, err)
		}
		pp.subs, pp.nextSync = c.Subscriptions, now.Add(p.syncEvery)
		p.stat(pp, func(s *PollStats) { s.LastSyncAt, s.Subscriptions = now, c.Subscriptions })
	}
	for ctx.Err() == nil {
		now = p.clock.Now()
		if now.Before(pp.pausedUntil) {
			return earliest(pp.pausedUntil, pp.nextSync), nil
		}
		workers := p.workers(pp, now)
		limit := workers
		// allowance is the tokens of this wave's shared reservation; -1
		// is none: the process's own budget admits each poll.
		allowance := -1
		spreadOnly := pp.spreading && p.sharesBudget(pp)
		switch {
		case spreadOnly:
			// A page of first polls to spread; its due polls wait for
			// a reservation.
			limit, allowance = spreadPage, 0
		case pp.spreading:
			limit = spreadPage
		case p.sharesBudget(pp):
			granted, err := p.reserve(ctx, pp, now, workers)
			if err != nil {
				return time.Time{}, err
			}
			if granted == 0 {
				p.stat(pp, func(s *PollStats) { s.Deferred++ })
				return earliest(pp.budget.readyAt(now), pp.nextSync), nil
			}
			limit, allowance = granted, granted
		default:
			if ready := pp.budget.readyAt(now); ready.After(now) {
				p.stat(pp, func(s *PollStats) { s.Deferred++ })
				return earliest(ready, pp.nextSync), nil
			}
		}
		start := now
		claimed, err := p.st.ClaimDuePolls(ctx, pp.name, p.owner, now, p.lease, limit)
		if err != nil {
			return time.Time{}, fmt.Errorf("live poll %s: %w", pp.name, err)
		}
		if len(claimed) == 0 {
			pp.spreading = false
			if allowance > 0 {
				pp.debt -= float64(allowance)
			}
			return p.nextDue(ctx, pp, now)
		}
		var wave []store.Subscription
		slots := make([]store.PollSlot, 0, len(claimed))
		spread := 0
		for _, s := range claimed {
			switch {
			case s.NextPollAt.IsZero():
				// Never scheduled (new, or stored by an older version):
				// its first poll falls at a random point of the coming
				// interval, and it keeps that place afterwards.
				at := now.Add(time.Duration(p.random() * float64(pp.interval)))
				slots = append(slots, store.PollSlot{SubscriptionKey: s.SubscriptionKey, Next: at})
				spread++
			case len(wave) < workers && admit(pp, now, &allowance):
				wave = append(wave, s)
			default:
				// Not this wave's: released, still due.
				slots = append(slots, store.PollSlot{SubscriptionKey: s.SubscriptionKey, Next: s.NextPollAt})
			}
		}
		if spread == 0 {
			pp.spreading = false
		}
		if allowance > 0 {
			// Reserved and not used: given back with the next one.
			pp.debt -= float64(allowance)
		}
		var slowest time.Duration
		if len(wave) > 0 {
			res := p.runWave(ctx, pp, wave)
			for _, r := range res {
				slowest = max(slowest, r.out.Elapsed)
			}
			slots = append(slots, p.apply(ctx, pp, wave, res)...)
		}
		if err := p.schedule(ctx, pp, slots); err != nil {
			return time.Time{}, err
		}
		if len(wave) > 0 && ctx.Err() == nil {
			// The whole wave, claim to schedule written, is what one
			// more wave costs; the refreshes' own part is timed apart
			// (latency), so the rest is what the store round trips and
			// the refresher's own work add to every wave.
			took := p.clock.Now().Sub(start)
			pp.overhead = ewma(pp.overhead, max(took-slowest, 0).Seconds())
		}
		if len(wave) == 0 && spread == 0 && spreadOnly {
			// Due polls only: the next round reserves for them.
			continue
		}
		if len(wave) == 0 && spread == 0 {
			// The budget held every due poll back.
			p.stat(pp, func(s *PollStats) { s.Deferred++ })
			return earliest(pp.budget.readyAt(now), pp.nextSync), nil
		}
	}
	return time.Time{}, ctx.Err()
}

// rebase moves the polls scheduled beyond now plus pp's interval, which a
// longer interval before a reload put there, to random points of the
// coming interval, so that a shorter poll_interval takes effect at once.
// It reads the provider's subscriptions once, streaming, and writes them
// in pages; slots leased by another replica are left to it.
func (p *Poller) rebase(ctx context.Context, pp *providerPoll, now time.Time) error {
	horizon := now.Add(pp.interval)
	var slots []store.PollSlot
	write := func() error {
		if len(slots) == 0 {
			return nil
		}
		_, err := p.st.SchedulePolls(ctx, p.owner, slots)
		slots = slots[:0]
		return err
	}
	err := p.st.ListSubscriptions(ctx, pp.name, func(s store.Subscription) error {
		if !s.NextPollAt.After(horizon) {
			return nil
		}
		at := now.Add(time.Duration(p.random() * float64(pp.interval)))
		slots = append(slots, store.PollSlot{SubscriptionKey: s.SubscriptionKey, Next: at})
		if len(slots) < spreadPage {
			return nil
		}
		return write()
	})
	if err == nil {
		err = write()
	}
	if err != nil {
		return fmt.Errorf("live poll %s: move polls into the shorter interval: %w", pp.name, err)
	}
	return nil
}

// nextDue is when pp should run again once nothing is due: the store's
// next due poll, or the next count when it has no subscription.
func (p *Poller) nextDue(ctx context.Context, pp *providerPoll, now time.Time) (time.Time, error) {
	next, ok, err := p.st.NextPollDue(ctx, pp.name, now)
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("live poll %s: %w", pp.name, err)
	case !ok:
		return pp.nextSync, nil
	case !next.After(now):
		// Due, yet nothing was claimable: another poller's claim, or a
		// write between the two reads. Look again shortly, not in a
		// loop.
		next = now.Add(time.Second)
	}
	return earliest(next, pp.nextSync), nil
}

// schedule writes a wave's next poll times and releases its leases. When
// the poller is stopping the write still runs, briefly, so that another
// poller (or this one restarted) need not wait for the leases to run
// out.
func (p *Poller) schedule(ctx context.Context, pp *providerPoll, slots []store.PollSlot) error {
	if len(slots) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), scheduleTimeout)
		defer cancel()
	}
	if _, err := p.st.SchedulePolls(ctx, p.owner, slots); err != nil {
		return fmt.Errorf("live poll %s: schedule: %w", pp.name, err)
	}
	return nil
}

// sharesBudget is true when pp's budget is kept in the store, for every
// replica together.
func (p *Poller) sharesBudget(pp *providerPoll) bool {
	return p.shared != nil && pp.budget.perSecond > 0
}

// reserve takes up to want tokens of pp's shared budget for a wave,
// settling the debt of the earlier ones; the process's budget then shows
// what the store's has left, for the stats and readyAt.
func (p *Poller) reserve(ctx context.Context, pp *providerPoll, now time.Time, want int) (int, error) {
	granted, left, err := p.shared.ReservePollBudget(ctx, store.BudgetReservation{
		Provider: pp.name, Now: now, PerSecond: pp.budget.perSecond, Burst: pp.budget.burst, Want: want, Debt: pp.debt,
	})
	if err != nil {
		return 0, fmt.Errorf("live poll %s: %w", pp.name, err)
	}
	pp.debt = 0
	pp.budget.tokens, pp.budget.last = left, now
	return granted, nil
}

// admit takes a token for one poll: from the wave's shared reservation
// when it has one (allowance >= 0), else from the process's budget.
func admit(pp *providerPoll, now time.Time, allowance *int) bool {
	if *allowance < 0 {
		return pp.budget.take(now)
	}
	if *allowance == 0 {
		return false
	}
	*allowance--
	return true
}

// charge settles a refresh admitted with one token that sent n requests
// (budget.charge); on a shared budget the difference waits for the next
// reservation.
func (p *Poller) charge(pp *providerPoll, n int) {
	if p.sharesBudget(pp) {
		pp.debt += float64(n - 1)
		return
	}
	pp.budget.charge(n)
}

// workers sizes pp's next wave (pollWorkers) and shows it in the stats.
func (p *Poller) workers(pp *providerPoll, now time.Time) int {
	latency := time.Duration(pp.latency * float64(time.Second))
	overhead := time.Duration(pp.overhead * float64(time.Second))
	w := pollWorkers(pp.subs, pp.interval, latency, overhead, pp.reqs, feedRate(pp.budget, pp.rateLimit, now), p.maxWorkers)
	p.stat(pp, func(s *PollStats) { s.Workers, s.Latency, s.WaveOverhead = w, latency, overhead })
	return w
}

// result is one refresh of a wave.
type result struct {
	out Outcome
	err error
}

// runWave refreshes the subscriptions at once and waits for all of them.
func (p *Poller) runWave(ctx context.Context, pp *providerPoll, wave []store.Subscription) []result {
	res := make([]result, len(wave))
	if len(wave) == 1 {
		res[0].out, res[0].err = p.refresh.Refresh(ctx, wave[0].SubscriptionKey, TriggerPoll)
		return res
	}
	var wg sync.WaitGroup
	for i, s := range wave {
		wg.Go(func() { res[i].out, res[i].err = p.refresh.Refresh(ctx, s.SubscriptionKey, TriggerPoll) })
	}
	wg.Wait()
	return res
}

// apply settles a wave: budget, rate-limit pauses, backoff and the
// statistics; it returns the subscriptions' next polls.
func (p *Poller) apply(ctx context.Context, pp *providerPoll, wave []store.Subscription, res []result) []store.PollSlot {
	now := p.clock.Now()
	slots := make([]store.PollSlot, 0, len(wave))
	next := func(s store.Subscription, at time.Time) {
		slots = append(slots, store.PollSlot{SubscriptionKey: s.SubscriptionKey, Next: at})
	}
	for i, e := range wave {
		out, err := res[i].out, res[i].err
		if ctx.Err() != nil {
			// Shutting down: the poll did not happen.
			next(e, e.NextPollAt)
			continue
		}
		p.stat(pp, func(s *PollStats) { s.Polls++; s.LastPollAt = now })
		switch {
		case err != nil:
			p.log.ErrorContext(ctx, "live poll", "provider", pp.name, "err", err)
			p.stat(pp, func(s *PollStats) { s.LastError = err.Error() })
			next(e, p.nextSlot(pp, e.NextPollAt, now))
			continue
		case out.Deleted:
			// Gone from the store, and so from its schedule.
			continue
		}
		p.charge(pp, out.Upstream.Requests)
		if out.Upstream.Requests > 0 {
			// Only refreshes that asked the upstream time it.
			pp.latency = ewma(pp.latency, out.Elapsed.Seconds())
			pp.reqs = ewma(pp.reqs, float64(out.Upstream.Requests))
		}
		if rl := out.Upstream.RateLimit; rl.Known {
			pp.rateLimit = rl
			p.stat(pp, func(s *PollStats) { s.RateLimitKnown, s.RateLimitRemaining = true, rl.Remaining })
		}
		if out.Queued {
			p.stat(pp, func(s *PollStats) { s.Changed++ })
		}
		limit := out.Upstream.RateLimit
		spent := limit.Known && limit.Remaining == 0 && limit.Reset.After(now)
		if spent || (limit.Known && limit.Remaining < limit.Limit/upstreamReserve && limit.Reset.After(now)) {
			// Nothing left until the reset, where asking would only earn
			// 429s (or GitHub's 403s); or only the reserve left, which is
			// the unfurls'.
			pp.pausedUntil = later(pp.pausedUntil, limit.Reset)
		}
		if !out.Transient {
			pp.failures = 0
			next(e, p.nextSlot(pp, e.NextPollAt, now))
			continue
		}
		pp.failures++
		wait := out.Upstream.RetryAfter
		if wait <= 0 {
			wait = p.backoff(pp.failures)
		}
		pp.pausedUntil = later(pp.pausedUntil, now.Add(wait))
		p.stat(pp, func(s *PollStats) {
			s.Failures++
			s.LastFailureAt, s.LastError = now, out.Record.Detail
		})
		if out.Upstream.Status == 429 || out.Upstream.RetryAfter > 0 || spent {
			// Limited, not broken: this link goes first when the pause
			// ends.
			next(e, e.NextPollAt)
			continue
		}
		// A 5xx or no answer may be this link's own: it waits for its next
		// round, so it cannot hold the others back.
		next(e, p.nextSlot(pp, e.NextPollAt, now))
	}
	p.stat(pp, func(s *PollStats) {
		s.ConsecutiveFailures = pp.failures
		s.PausedUntil = pp.pausedUntil
	})
	return slots
}

// nextSlot is the first time after now that is a whole number of
// intervals after due: a subscription keeps its place in the interval,
// and polls missed while held back are skipped, not made up.
func (p *Poller) nextSlot(pp *providerPoll, due, now time.Time) time.Time {
	if due.After(now) {
		return due
	}
	n := now.Sub(due)/pp.interval + 1
	return due.Add(n * pp.interval)
}

// backoff is the provider's pause after n transient failures in a row.
func (p *Poller) backoff(n int) time.Duration {
	return backoff(n, p.baseBackoff, p.maxBackoff, p.jitter, p.random())
}

func (p *Poller) random() float64 {
	p.randMu.Lock()
	defer p.randMu.Unlock()
	return p.rand()
}

// stat updates pp's statistics under the lock. Its callers hold pp.mu,
// so the budget can be read too.
func (p *Poller) stat(pp *providerPoll, fn func(*PollStats)) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	fn(&pp.stats)
	pp.stats.Budgeted, pp.stats.BudgetLeft = pp.budget.perSecond > 0, pp.budget.tokens
}

// earliest is the earlier of two times, a zero time counting as none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
