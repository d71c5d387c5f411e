package live

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream"
)

// Defaults applied by NewPoller to zero PollerOptions fields.
const (
	// DefaultSyncInterval is how often the poller reads the provider's
	// subscriptions again, to pick up new ones and drop deleted ones.
	DefaultSyncInterval = time.Minute
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

// SubscriptionLister walks a provider's subscriptions; every store is one.
type SubscriptionLister interface {
	ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error
}

// PollerOptions configure NewPoller. Refresher, Store and Registry are
// required.
type PollerOptions struct {
	Refresher SubscriptionRefresher
	Store     SubscriptionLister
	// Registry gives the providers; those with live updates on and a
	// poll_interval above zero are polled (config.Live).
	Registry *provider.Registry
	// Logger receives polling failures; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock Clock
	// Rand returns a number in [0, 1) for the spread of first polls and
	// backoff jitter; nil is math/rand/v2. It is called under a lock.
	Rand func() float64
	// MaxWorkers caps the refreshes of one provider at once; within it
	// their number adapts (pollWorkers). Default DefaultMaxPollWorkers.
	MaxWorkers int
	// SyncInterval is how often the subscriptions are read again.
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
	// Subscriptions is how many subscriptions are scheduled.
	Subscriptions int
	// LastSyncAt is when the subscriptions were last read.
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
	// subscription within Interval at the measured Latency, within the
	// request budget, the upstream's rate limit and the maximum.
	Workers int
	// Latency is the running mean of one refresh's duration.
	Latency time.Duration
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
// poll_interval (issue 4 item 2). First polls are spread over the
// interval with jitter, so a restart does not fetch everything at once;
// each provider stays within max_requests_per_hour; a Retry-After, or a
// rate limit with nothing remaining, pauses the provider until the
// upstream said; 429s and 5xx without one pause it with exponential
// backoff. Time comes from the Clock, so tests drive it without sleeping.
type Poller struct {
	refresh     SubscriptionRefresher
	st          SubscriptionLister
	log         *slog.Logger
	clock       Clock
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
	mu          sync.Mutex
	budget      *budget
	sched       schedule
	entries     map[store.SubscriptionKey]*entry
	gen         uint64
	nextSync    time.Time
	pausedUntil time.Time
	failures    int
	// latency and reqs are running means of a refresh's duration in
	// seconds and of the requests it sends; rateLimit is the upstream's
	// last announced rate limit. They size the waves (pollWorkers).
	latency   float64
	reqs      float64
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
	case opts.MaxWorkers < 0, opts.SyncInterval < 0, opts.BaseBackoff < 0, opts.MaxBackoff < 0:
		return nil, errors.New("live: poller: negative option")
	case opts.Jitter < 0 || opts.Jitter >= 1:
		return nil, fmt.Errorf("live: poller: jitter %g outside [0, 1)", opts.Jitter)
	}
	p := &Poller{
		refresh: opts.Refresher, st: opts.Store, log: opts.Logger, clock: opts.Clock, rand: opts.Rand,
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
		p.clock = realClock{}
	}
	if p.rand == nil {
		p.rand = rand.Float64
	}
	for _, pv := range opts.Registry.All() {
		live := pv.Config.Live
		if !live.IsEnabled() || live.PollInterval.D() <= 0 {
			continue
		}
		pp := &providerPoll{
			name: pv.Name, interval: live.PollInterval.D(), budget: newBudget(live.MaxRequestsPerHour),
			entries: map[store.SubscriptionKey]*entry{},
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

// pollProvider reads the subscriptions when a sync is due, then runs due
// refreshes in waves of up to Workers until none is due, the budget is
// spent or a pause begins. It returns when it should run next.
func (p *Poller) pollProvider(ctx context.Context, pp *providerPoll) (time.Time, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	now := p.clock.Now()
	if !now.Before(pp.nextSync) {
		if err := p.sync(ctx, pp, now); err != nil {
			return time.Time{}, err
		}
		pp.nextSync = now.Add(p.syncEvery)
	}
	for ctx.Err() == nil {
		now = p.clock.Now()
		switch {
		case now.Before(pp.pausedUntil):
			return earliest(pp.pausedUntil, pp.nextSync), nil
		case len(pp.sched) == 0:
			return pp.nextSync, nil
		case pp.sched[0].due.After(now):
			return earliest(pp.sched[0].due, pp.nextSync), nil
		}
		workers := p.workers(pp, now)
		var wave []*entry
		for len(wave) < workers && len(pp.sched) > 0 && !pp.sched[0].due.After(now) && pp.budget.take(now) {
			wave = append(wave, heap.Pop(&pp.sched).(*entry))
		}
		if len(wave) == 0 {
			p.stat(pp, func(s *PollStats) { s.Deferred++ })
			return earliest(pp.budget.readyAt(now), pp.nextSync), nil
		}
		p.apply(ctx, pp, wave, p.runWave(ctx, pp, wave))
	}
	return time.Time{}, ctx.Err()
}

// workers sizes pp's next wave (pollWorkers) and shows it in the stats.
func (p *Poller) workers(pp *providerPoll, now time.Time) int {
	latency := time.Duration(pp.latency * float64(time.Second))
	w := pollWorkers(len(pp.entries), pp.interval, latency, pp.reqs, feedRate(pp.budget, pp.rateLimit, now), p.maxWorkers)
	p.stat(pp, func(s *PollStats) { s.Workers, s.Latency = w, latency })
	return w
}

// result is one refresh of a wave.
type result struct {
	out Outcome
	err error
}

// runWave refreshes the entries at once and waits for all of them.
func (p *Poller) runWave(ctx context.Context, pp *providerPoll, wave []*entry) []result {
	res := make([]result, len(wave))
	if len(wave) == 1 {
		res[0].out, res[0].err = p.refresh.Refresh(ctx, wave[0].key, TriggerPoll)
		return res
	}
	var wg sync.WaitGroup
	for i, e := range wave {
		wg.Go(func() { res[i].out, res[i].err = p.refresh.Refresh(ctx, e.key, TriggerPoll) })
	}
	wg.Wait()
	return res
}

// apply settles a wave: budget, rate-limit pauses, backoff, the entries'
// next polls and the statistics.
func (p *Poller) apply(ctx context.Context, pp *providerPoll, wave []*entry, res []result) {
	now := p.clock.Now()
	for i, e := range wave {
		out, err := res[i].out, res[i].err
		if ctx.Err() != nil {
			// Shutting down: the poll did not happen.
			heap.Push(&pp.sched, e)
			continue
		}
		p.stat(pp, func(s *PollStats) { s.Polls++; s.LastPollAt = now })
		switch {
		case err != nil:
			p.log.ErrorContext(ctx, "live poll", "provider", pp.name, "err", err)
			p.stat(pp, func(s *PollStats) { s.LastError = err.Error() })
			e.due = p.nextSlot(pp, e.due, now)
			heap.Push(&pp.sched, e)
			continue
		case out.Deleted:
			delete(pp.entries, e.key)
			continue
		}
		pp.budget.charge(out.Upstream.Requests)
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
			e.due = p.nextSlot(pp, e.due, now)
			heap.Push(&pp.sched, e)
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
			heap.Push(&pp.sched, e)
			continue
		}
		// A 5xx or no answer may be this link's own: it waits for its next
		// round, so it cannot hold the others back.
		e.due = p.nextSlot(pp, e.due, now)
		heap.Push(&pp.sched, e)
	}
	p.stat(pp, func(s *PollStats) {
		s.ConsecutiveFailures = pp.failures
		s.PausedUntil = pp.pausedUntil
		s.Subscriptions = len(pp.entries)
	})
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

// sync reads the provider's subscriptions: new ones are scheduled at a
// random point of the coming interval, so first polls are spread evenly
// (a restart, or thousands of links pasted at once, does not become a
// burst); those no longer stored are dropped.
func (p *Poller) sync(ctx context.Context, pp *providerPoll, now time.Time) error {
	pp.gen++
	gen := pp.gen
	err := p.st.ListSubscriptions(ctx, pp.name, func(s store.Subscription) error {
		k := s.SubscriptionKey
		k.Provider = pp.name // one copy of the name for every entry
		if e, ok := pp.entries[k]; ok {
			e.gen = gen
			return nil
		}
		e := &entry{key: k, gen: gen, due: now.Add(time.Duration(p.random() * float64(pp.interval)))}
		pp.entries[k] = e
		heap.Push(&pp.sched, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("live poll %s: %w", pp.name, err)
	}
	for k, e := range pp.entries {
		if e.gen != gen {
			heap.Remove(&pp.sched, e.index)
			delete(pp.entries, k)
		}
	}
	p.stat(pp, func(s *PollStats) { s.LastSyncAt = now; s.Subscriptions = len(pp.entries) })
	return nil
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

// entry is one scheduled subscription.
type entry struct {
	key   store.SubscriptionKey
	due   time.Time
	index int
	gen   uint64
}

// schedule is a min-heap of entries by due time, ties in (uri,
// connection) order so that a poll order is reproducible.
type schedule []*entry

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	if c := s[i].due.Compare(s[j].due); c != 0 {
		return c < 0
	}
	return cmp.Or(strings.Compare(s[i].key.URI, s[j].key.URI), strings.Compare(s[i].key.ConnectionID, s[j].key.ConnectionID)) < 0
}
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].index, s[j].index = i, j
}
func (s *schedule) Push(x any) {
	e := x.(*entry)
	e.index = len(*s)
	*s = append(*s, e)
}
func (s *schedule) Pop() any {
	old := *s
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	return e
}
