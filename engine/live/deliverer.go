package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultRate is the average PATCHes per second per connection: the
	// 3 requests a second Notion documents (protocol 7.4).
	DefaultRate = 3.0
	// DefaultBurst is how many PATCHes a quiet connection may send at once.
	DefaultBurst = 3
	// DefaultBaseBackoff is the first wait after a 5xx or network error;
	// it doubles with each failure (security.md F9: about 1 s, 2 s, 4 s).
	DefaultBaseBackoff = time.Second
	// DefaultMaxBackoff caps one backoff wait.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultJitter spreads each backoff wait by ±20 %, so items that
	// failed together do not retry together.
	DefaultJitter = 0.2
	// DefaultMaxAttempts bounds the sends of one state (TH-52).
	DefaultMaxAttempts = 8
	// DefaultMaxAge bounds the time spent on one state, from its enqueue
	// (TH-52); a state older than this is stale anyway.
	DefaultMaxAge = time.Hour
	// DefaultWorkers is how many connections are served at once.
	DefaultWorkers = 4
	// DefaultBatch is how many due items one store read returns.
	DefaultBatch = 256
	// DefaultPollInterval is the longest Run sleeps without a Kick, so an
	// item enqueued without one is still found.
	DefaultPollInterval = 30 * time.Second
)

// staleReservation is how long a pacing slot is remembered after it
// passed without its item being sent (the item was deleted meanwhile).
const staleReservation = time.Minute

// maxPasses bounds the store reads of one DeliverDue.
const maxPasses = 64

// endOfTime is a horizon past every NextAt: DueOutbox with it and limit 1
// returns the item due first.
var endOfTime = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)

// Notion is the part of *notion.Client the Deliverer calls.
type Notion interface {
	UpdateObject(ctx context.Context, token config.Secret, env notion.Envelope) error
}

// Store is what the Deliverer needs of the store; the bolt and memory
// stores implement it.
type Store interface {
	store.Outbox
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error
	GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error)
	DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error
}

// Options configure New. Store, Notion and Keyring are required; zero
// values elsewhere take the defaults above.
type Options struct {
	// Store holds the outbox, connections and subscriptions.
	Store Store
	// Notion sends PATCH /v1/external/object; a *notion.Client.
	Notion Notion
	// Keyring opens each connection's sealed Notion token.
	Keyring *sealing.Keyring
	// Logger receives delivery failures; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock clock.Clock
	// Rand returns a number in [0, 1) for backoff jitter; nil is
	// math/rand/v2.
	Rand func() float64
	// Rate and Burst pace each connection (protocol 7.4, F10).
	Rate  float64
	Burst int
	// BaseBackoff, MaxBackoff and Jitter shape the backoff on 5xx and
	// network errors: the wait after n failures is BaseBackoff*2^(n-1),
	// at most MaxBackoff, times a factor in [1-Jitter, 1+Jitter) (F9).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	Jitter      float64
	// MaxAttempts and MaxAge bound the work on one state; past either it
	// is dropped with an error log and a recorded failure (TH-52).
	MaxAttempts int
	MaxAge      time.Duration
	// Workers is how many connections are served at once.
	Workers int
	// Batch is how many due items one store read returns.
	Batch int
	// PollInterval is the longest Run waits without a Kick.
	PollInterval time.Duration
	// Shared, when set, is the outbox of a store several replicas drain
	// (the postgres store): items are claimed with a lease and pacing
	// slots are reserved in the store, so no PATCH goes twice and the
	// pace of each connection holds across all replicas. nil keeps both
	// in this process's memory (bolt, memory).
	Shared store.SharedOutbox
	// Lease is how long a claimed item of Shared is held; zero is
	// DefaultLease.
	Lease time.Duration
	// OnPush, when set, learns the result of every attempt (ResultDelivered,
	// ResultRetry, ResultFailed) per provider, for metrics. It must not
	// block.
	OnPush func(provider, result string)
}

// Deliverer drains the outbox into Notion. It is safe for concurrent use;
// run one per store.
type Deliverer struct {
	st    Store
	nt    Notion
	keys  *sealing.Keyring
	log   *slog.Logger
	clock clock.Clock
	rand  func() float64

	interval, tolerance   time.Duration
	baseBackoff, maxDelay time.Duration
	jitter                float64
	maxAttempts           int
	maxAge                time.Duration
	workers, batch        int
	poll                  time.Duration

	// disp takes due items and paces them (dispatch.go).
	disp dispatch

	kick chan struct{}
	// passMu serializes DeliverDue, so pacing decisions see every send.
	passMu sync.Mutex

	mu sync.Mutex
	// pacers and reserved hold the pacing state per connection and the
	// slots handed to deferred items (localDispatch; with a shared outbox
	// pacers keep only this process's view of Retry-After holds). They
	// live in memory: after a restart items simply take new slots.
	pacers   map[string]*pacer
	reserved map[store.SubscriptionKey]time.Time
	stats    map[string]*ProviderStats
	onPush   func(provider, result string)
}

// New checks opts, applies defaults and returns a Deliverer. Start it
// with Run.
func New(opts Options) (*Deliverer, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("live: no store")
	case opts.Notion == nil:
		return nil, errors.New("live: no notion client")
	case opts.Keyring == nil:
		return nil, errors.New("live: no keyring")
	case opts.Rate < 0, opts.Burst < 0, opts.BaseBackoff < 0, opts.MaxBackoff < 0, opts.MaxAttempts < 0,
		opts.MaxAge < 0, opts.Workers < 0, opts.Batch < 0, opts.PollInterval < 0, opts.Lease < 0:
		return nil, errors.New("live: negative option")
	case opts.Jitter < 0 || opts.Jitter >= 1:
		return nil, fmt.Errorf("live: jitter %g outside [0, 1)", opts.Jitter)
	}
	d := &Deliverer{
		st: opts.Store, nt: opts.Notion, keys: opts.Keyring,
		log: opts.Logger, clock: opts.Clock, rand: opts.Rand,
		baseBackoff: orDefault(opts.BaseBackoff, DefaultBaseBackoff),
		maxDelay:    orDefault(opts.MaxBackoff, DefaultMaxBackoff),
		jitter:      opts.Jitter,
		maxAttempts: orDefault(opts.MaxAttempts, DefaultMaxAttempts),
		maxAge:      orDefault(opts.MaxAge, DefaultMaxAge),
		workers:     orDefault(opts.Workers, DefaultWorkers),
		batch:       orDefault(opts.Batch, DefaultBatch),
		poll:        orDefault(opts.PollInterval, DefaultPollInterval),
		kick:        make(chan struct{}, 1),
		pacers:      map[string]*pacer{},
		reserved:    map[store.SubscriptionKey]time.Time{},
		stats:       map[string]*ProviderStats{},
		onPush:      opts.OnPush,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = clock.Real{}
	}
	if d.rand == nil {
		d.rand = rand.Float64
	}
	if opts.Jitter == 0 {
		d.jitter = DefaultJitter
	}
	d.disp = localDispatch{d}
	if opts.Shared != nil {
		d.disp = sharedDispatch{d: d, st: opts.Shared, lease: orDefault(opts.Lease, DefaultLease)}
	}
	rate := orDefault(opts.Rate, DefaultRate)
	d.interval = time.Duration(float64(time.Second) / rate)
	d.tolerance = time.Duration(orDefault(opts.Burst, DefaultBurst)-1) * d.interval
	return d, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Kick wakes Run, after an Enqueue, without waiting.
func (d *Deliverer) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: it calls DeliverDue, then waits for the
// next item to fall due, a Kick, or PollInterval, whichever comes first.
// A PATCH in flight when ctx ends is abandoned without counting as an
// attempt; PATCH with a full set is idempotent, so it is sent again
// after a restart (protocol 7.4, F15).
func (d *Deliverer) Run(ctx context.Context) {
	for {
		next, err := d.DeliverDue(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := d.poll
		if err != nil {
			// The store is failing: try again after a pause rather than
			// in a loop.
			d.log.ErrorContext(ctx, "notion push delivery", "err", err)
			wait = d.baseBackoff
		} else if !next.IsZero() {
			wait = max(min(wait, next.Sub(d.clock.Now())), 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-d.clock.After(wait):
		}
	}
}

// Push queues body, the envelope to PATCH for k, unless it changes
// nothing: hash (the digest of its operations, as an unfurl records in
// Subscription.AttrHash) equals the pending state's or, with none
// pending, what Notion was last sent (issue 4 item 3). It reports whether
// it queued, and Kicks Run when it did. A subscription that no longer
// exists gets nothing (TH-52: no PATCH after a deletion).
func (d *Deliverer) Push(ctx context.Context, k store.SubscriptionKey, body []byte, hash string) (bool, error) {
	pending, err := d.st.GetOutboxItem(ctx, k)
	switch {
	case err == nil:
		if pending.AttrHash == hash {
			return false, nil
		}
	case errors.Is(err, store.ErrNotFound):
		sub, err := d.st.GetSubscription(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("push: %w", err)
		}
		if sub.AttrHash == hash {
			return false, nil
		}
	default:
		return false, fmt.Errorf("push: %w", err)
	}
	now := d.clock.Now()
	_, err = d.st.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: body, AttrHash: hash, EnqueuedAt: now, NextAt: now})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // deleted since the check above
	}
	if err != nil {
		return false, fmt.Errorf("push: %w", err)
	}
	d.Kick()
	return true, nil
}

// DeliverDue sends what is due now, as far as pacing allows, and returns
// when the next item falls due (zero when the outbox is empty). Run calls
// it in a loop; tests call it between steps of a fake clock. Calls are
// serialized. An error is a store failure; Notion's answers are handled
// per item.
func (d *Deliverer) DeliverDue(ctx context.Context) (time.Time, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	limit := d.disp.limit()
	for range maxPasses {
		now := d.clock.Now()
		items, err := d.disp.claim(ctx, now, limit)
		if err != nil {
			return time.Time{}, fmt.Errorf("deliver: %w", err)
		}
		if len(items) == 0 {
			break
		}
		if err := d.pass(ctx, now, items); err != nil {
			return time.Time{}, err
		}
		if len(items) < limit {
			break
		}
	}
	d.prune(d.clock.Now())
	first, err := d.st.DueOutbox(ctx, endOfTime, 1)
	if err != nil {
		return time.Time{}, fmt.Errorf("deliver: %w", err)
	}
	if len(first) == 0 {
		return time.Time{}, nil
	}
	return first[0].NextAt, nil
}

// pass handles one batch of due items: items their connection's pace
// does not allow yet are rescheduled to their slot in one write; the
// rest are sent, one goroutine per connection, at most Workers at once.
func (d *Deliverer) pass(ctx context.Context, now time.Time, items []store.OutboxClaim) error {
	claims := map[string][]store.OutboxClaim{}
	var conns []string
	for _, c := range items {
		if _, seen := claims[c.ConnectionID]; !seen {
			conns = append(conns, c.ConnectionID)
		}
		claims[c.ConnectionID] = append(claims[c.ConnectionID], c)
	}
	var held, slotted []store.OutboxUpdate
	byConn := map[string][]store.OutboxItem{}
	var order []string
	for _, conn := range conns {
		verdicts, err := d.disp.admit(ctx, now, claims[conn])
		if err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		for i, v := range verdicts {
			c := claims[conn][i]
			switch {
			case !v.ok && v.slotted:
				slotted = append(slotted, update(c.OutboxItem, v.at))
			case !v.ok:
				held = append(held, update(c.OutboxItem, v.at))
			default:
				if _, seen := byConn[conn]; !seen {
					order = append(order, conn)
				}
				byConn[conn] = append(byConn[conn], c.OutboxItem)
			}
		}
	}
	if len(held)+len(slotted) > 0 {
		if err := d.disp.postpone(ctx, held, slotted); err != nil {
			return fmt.Errorf("deliver: pace: %w", err)
		}
	}
	errs := make([]error, len(order))
	sem := make(chan struct{}, d.workers)
	var wg sync.WaitGroup
	for i, conn := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = d.deliverConn(ctx, byConn[conn])
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pacer returns the pacer of a connection, making it if need be. Called
// with d.mu held.
func (d *Deliverer) pacer(connectionID string) *pacer {
	p := d.pacers[connectionID]
	if p == nil {
		p = &pacer{}
		d.pacers[connectionID] = p
	}
	return p
}

// update is the reschedule of it to at, attempts unchanged.
func update(it store.OutboxItem, at time.Time) store.OutboxUpdate {
	return store.OutboxUpdate{SubscriptionKey: it.SubscriptionKey, Seq: it.Seq, NextAt: at, Attempts: it.Attempts, LastError: it.LastError}
}

// prune forgets pacers back at rest and slots long passed, so memory
// follows the queue, not its history.
func (d *Deliverer) prune(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, p := range d.pacers {
		if p.idle(now, d.tolerance) {
			delete(d.pacers, id)
		}
	}
	for k, at := range d.reserved {
		if at.Before(now.Add(-staleReservation)) {
			delete(d.reserved, k)
		}
	}
}
