package live

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// Triggers of a refresh, as store.RefreshRecord.Trigger.
const (
	TriggerPoll    = "poll"
	TriggerWebhook = "webhook"
)

// Outcomes of a refresh, as store.RefreshRecord.Outcome.
const (
	// OutcomeUnchanged: fetched; Notion already has these attributes.
	OutcomeUnchanged = "unchanged"
	// OutcomeNotModified: the upstream answered 304 to the validators.
	OutcomeNotModified = "not_modified"
	// OutcomeChanged: new attributes were queued for Notion.
	OutcomeChanged = "changed"
	// OutcomeGone: the object is gone or forbidden upstream, and an
	// error operation was queued (or Notion has it already).
	OutcomeGone = "gone"
	// OutcomeError: the refresh failed; nothing was queued.
	OutcomeError = "error"
	// OutcomeSkipped: nothing was fetched (the connection needs a
	// reconnect, or the provider is no longer configured).
	OutcomeSkipped = "skipped"
	// OutcomePending: a webhook asked for a refresh that has not run yet
	// (the pending mark, store.RefreshPending).
	OutcomePending = store.RefreshPending
)

// Defaults applied by NewRefresher to zero RefresherOptions fields.
const (
	// DefaultRecordInterval is how long refresh records wait before they
	// are written together in one commit.
	DefaultRecordInterval = time.Second
	// DefaultWebhookWorkers is how many webhook refreshes run at once.
	DefaultWebhookWorkers = 8
	// DefaultWebhookQueue is how many pending marks one claim takes from
	// the store's index to wait in memory for a worker; the rest wait,
	// marked, in the store, and the next claim takes them as soon as the
	// workers catch up. Small, so that a page is worked through well
	// within its lease.
	DefaultWebhookQueue = 64
	// DefaultPendingInterval is how often an idle Run claims pending
	// marks without being woken: marks left by a failed refresh, or
	// leased by a process that died (another replica, or this one before
	// a crash) once the lease runs out.
	DefaultPendingInterval = 5 * time.Second
	// DefaultPendingLease is how long a claimed mark stays this
	// process's; recording the refresh releases it sooner. Short, since
	// after a crash the restarted process waits for it (a claim it
	// outlives only costs another replica a second fetch).
	DefaultPendingLease = 10 * time.Second
)

// maxPendingRecords writes the refresh records at once when this many
// wait, so memory stays bounded even if Run is not running.
const maxPendingRecords = 4096

// maxSubsPerURI bounds the subscriptions one webhook link may refresh.
const maxSubsPerURI = 1000

// finalFlushTimeout bounds the write of the last records when Run ends.
const finalFlushTimeout = 5 * time.Second

// Credentials is the part of *connect.Service the Refresher calls: an
// unfurl as a connection under the engine's one credential policy (its
// upstream credential, refreshed when expired, renewed once after the
// upstream refused it), the same the unfurl route follows.
type Credentials interface {
	Unfurl(ctx context.Context, p *provider.Provider, conn store.Connection, uri string, opts provider.UnfurlOptions) (*provider.Result, error)
}

// Interface guards: the wiring passes these.
var (
	_ Credentials           = (*connect.Service)(nil)
	_ Pusher                = (*Deliverer)(nil)
	_ RefreshStore          = store.Store(nil)
	_ SubscriptionRefresher = (*Refresher)(nil)
)

// Pusher queues a preview's new state for Notion; *Deliverer is one.
type Pusher interface {
	Push(ctx context.Context, k store.SubscriptionKey, body []byte, hash string) (bool, error)
}

// RefreshStore is what the Refresher and the Poller need of the store.
type RefreshStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error)
	DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error
	PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error)
	// ClaimPending leases the oldest pending marks (store.Schedule).
	ClaimPending(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Subscription, error)
	// SubscriptionKeysByURIs finds the subscriptions of a webhook's
	// links.
	SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]store.SubscriptionKey, error)
}

// RefresherOptions configure NewRefresher. Store, Registry and Pusher are
// required.
type RefresherOptions struct {
	Store    RefreshStore
	Registry *provider.Registry
	// Credentials gives each connection's upstream credential; nil runs
	// every refresh with the provider's service-wide token.
	Credentials Credentials
	// Pusher queues changes for Notion: the Deliverer.
	Pusher Pusher
	// Logger receives refresh failures; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock clock.Clock
	// RecordInterval is how long refresh records are batched before one
	// PutSubscriptions writes them.
	RecordInterval time.Duration
	// WebhookWorkers and WebhookQueue bound the refreshes webhooks ask
	// for: how many run at once, how many claimed marks may wait in
	// memory.
	WebhookWorkers int
	WebhookQueue   int
	// PendingInterval is how often an idle Run claims pending marks
	// (it always does as it starts, and whenever a webhook marks some).
	PendingInterval time.Duration
	// Owner names this process in the leases of the marks it claims; the
	// App passes one per process. Empty is a random one.
	Owner string
	// PendingLease is how long a claimed mark stays this process's.
	// Default DefaultPendingLease.
	PendingLease time.Duration
	// OnRefresh, when set, is called after every refresh, for tests and
	// metrics. It must not block.
	OnRefresh func(k store.SubscriptionKey, out Outcome)
}

// Outcome is what one refresh did.
type Outcome struct {
	// Record is the story written to the subscription; zero when the
	// subscription no longer exists.
	Record store.RefreshRecord
	// Queued is true when a PATCH was queued for Notion.
	Queued bool
	// Deleted is true when the subscription is gone: deleted before the
	// refresh, or now because its connection was.
	Deleted bool
	// Transient is true when the upstream failed in a way that passes
	// (429, 5xx, a spent rate limit, a timeout or network error): the
	// poller backs off and nothing was pushed.
	Transient bool
	// Upstream is what the upstream said (status, rate-limit signals,
	// requests sent).
	Upstream provider.UpstreamInfo
	// Elapsed is how long the upstream fetch took, by the Clock; the
	// poller sizes its waves with it.
	Elapsed time.Duration
}

// Refresher refreshes subscriptions: it fetches the link again with its
// connection's credential and queues a PATCH when Notion's copy is out of
// date (issue 4 items 2 and 3). The Poller calls it on a schedule, the
// webhook route through RefreshURIs. It is safe for concurrent use.
type Refresher struct {
	st    RefreshStore
	reg   *provider.Registry
	creds Credentials
	push  Pusher
	log   *slog.Logger
	clock clock.Clock
	every time.Duration
	done  func(store.SubscriptionKey, Outcome)

	workers int
	page    int
	jobs    chan store.SubscriptionKey
	scan    time.Duration
	owner   string
	lease   time.Duration
	// kick wakes Run's claim loop when a webhook has marked
	// subscriptions.
	kick chan struct{}
	// marks writes the webhooks' pending marks in shared commits.
	marks *marker

	mu sync.Mutex
	// pending holds the refresh records waiting for the next flush, and
	// writing the batch a flush is writing until the store has answered:
	// a record in either settles its key's mark as surely as one in the
	// store, and a claim that finds the mark must see it.
	pending map[store.SubscriptionKey]store.Subscription
	writing map[store.SubscriptionKey]store.Subscription
	// queued holds the keys in jobs, so that a key is queued once
	// however many claims return it before a worker takes it.
	queued map[store.SubscriptionKey]bool
	// running serializes the refreshes of one key: two at once could
	// push their states in the opposite order of their fetches, and a
	// stale state would follow a newer one to Notion.
	running map[store.SubscriptionKey]*keyLock
	// flushMu keeps batches in order: a newer record of a key must not
	// be overwritten by an older batch committed after it.
	flushMu sync.Mutex
}

// NewRefresher checks opts and applies defaults. Start it with Run, which
// runs the webhook refreshes and writes the refresh records.
func NewRefresher(opts RefresherOptions) (*Refresher, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("live: refresher: no store")
	case opts.Registry == nil:
		return nil, errors.New("live: refresher: no provider registry")
	case opts.Pusher == nil:
		return nil, errors.New("live: refresher: no pusher")
	case opts.RecordInterval < 0, opts.WebhookWorkers < 0, opts.WebhookQueue < 0, opts.PendingInterval < 0, opts.PendingLease < 0:
		return nil, errors.New("live: refresher: negative option")
	}
	r := &Refresher{
		st: opts.Store, reg: opts.Registry, creds: opts.Credentials, push: opts.Pusher,
		log: opts.Logger, clock: opts.Clock, done: opts.OnRefresh,
		every:   orDefault(opts.RecordInterval, DefaultRecordInterval),
		workers: orDefault(opts.WebhookWorkers, DefaultWebhookWorkers),
		page:    orDefault(opts.WebhookQueue, DefaultWebhookQueue),
		scan:    orDefault(opts.PendingInterval, DefaultPendingInterval),
		owner:   opts.Owner,
		lease:   orDefault(opts.PendingLease, DefaultPendingLease),
		kick:    make(chan struct{}, 1),
		pending: map[store.SubscriptionKey]store.Subscription{},
		queued:  map[store.SubscriptionKey]bool{},
		running: map[store.SubscriptionKey]*keyLock{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.clock == nil {
		r.clock = clock.Real{}
	}
	if r.owner == "" {
		r.owner = "refresher-" + crand.Text()
	}
	r.jobs = make(chan store.SubscriptionKey, r.page)
	r.marks = &marker{put: r.st.PutSubscriptions}
	return r, nil
}

// Run serves webhook refreshes and writes refresh records every
// RecordInterval until ctx ends; then it writes what is left. Its claim
// loop takes the pending marks from the store's index in pages, oldest
// first, as it starts, whenever RefreshURIs marks some, and every
// PendingInterval, so that what a webhook was answered 202 for before a
// crash is refreshed after the restart (security.md F1) and nothing waits
// for a rescan of every subscription (issue 11).
func (r *Refresher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Go(func() { r.claimLoop(ctx) })
	defer func() {
		wg.Wait()
		// ctx is over; the last records still deserve a bounded write.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
		defer cancel()
		if err := r.Flush(fctx); err != nil {
			r.log.WarnContext(fctx, "live refresh records", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(r.every):
			n, err := r.flush(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "live refresh records", "err", err)
			}
			if n > 0 {
				// Recording a refresh releases its mark's lease; a mark
				// made while it ran (for a change it may have missed)
				// outlives the record and is claimable now.
				r.wake()
			}
		}
	}
}

// claimLoop hands pending marks to the workers: it claims pages until
// one comes back empty, then waits for a kick or PendingInterval.
func (r *Refresher) claimLoop(ctx context.Context) {
	for {
		for ctx.Err() == nil && r.claimPending(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-r.clock.After(r.scan):
		}
	}
}

// claimPending claims one page of pending marks and queues those that
// are neither queued, nor refreshing, nor refreshed since their mark (a
// record waiting for the next flush, or being written, clears the mark),
// waiting for room in the queue. It reports whether the page was full,
// so that the loop claims again at once. A store failure is logged and
// waits for the next claim.
func (r *Refresher) claimPending(ctx context.Context) bool {
	marked, err := r.st.ClaimPending(ctx, r.owner, r.clock.Now(), r.lease, r.page)
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "live pending refreshes", "err", err)
		}
		return false
	}
	for _, s := range marked {
		k := s.SubscriptionKey
		r.mu.Lock()
		rec, recorded := r.waitingRecord(k)
		skip := (recorded && settles(rec.Refresh, s.Refresh)) || r.queued[k] || r.running[k] != nil
		if !skip {
			r.queued[k] = true
		}
		r.mu.Unlock()
		if skip {
			// Refreshed since the mark (the next flush clears it), or
			// queued, or refreshing now: a refresh that began after the
			// mark clears it, and one that began before leaves it to be
			// claimed again when its lease runs out.
			continue
		}
		select {
		case r.jobs <- k:
		case <-ctx.Done():
			return false
		}
	}
	return len(marked) == r.page
}

// work runs queued webhook refreshes until ctx ends.
func (r *Refresher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-r.jobs:
			_, err := r.refreshNotify(ctx, k, TriggerWebhook, true)
			if err != nil && ctx.Err() == nil && !errors.Is(err, errSettled) {
				r.log.ErrorContext(ctx, "live refresh", "provider", k.Provider, "err", err)
			}
		}
	}
}

// RefreshURIs asks for a refresh of every subscription of provider's
// links, for a webhook, and says how many. A link matches the
// subscriptions of the same object: the same pattern and captured groups,
// pasted as the event names it or with a fragment, a query, a trailing
// slash, http or www. Links of no pattern are ignored.
//
// Before it returns, and so before the webhook is answered 202, the
// subscriptions are marked pending in one store commit, shared with the
// webhooks of the moment (marker): the request is
// durable, and a crash before the refresh ran only delays it until Run
// starts again (issue 4 item 4, security.md F1). Then Run is woken to
// claim the marks from the store's index. An error means nothing was
// marked and the webhook must not be acknowledged.
func (r *Refresher) RefreshURIs(ctx context.Context, providerName string, uris []string) (int, error) {
	p, ok := r.reg.Get(providerName)
	if !ok {
		return 0, fmt.Errorf("refresh: unknown provider %q", providerName)
	}
	// Every link's lookups go to the store in one call (one read), and
	// its keys are matched against the objects the links name here: a
	// webhook naming 10,000 links made up to twelve reads per link
	// before, each decoding the records it walked past (issue 11).
	objects := map[objectKey]bool{}
	var exact, prefixes []string
	for _, uri := range uris {
		m, err := p.Match(uri)
		if err != nil {
			continue
		}
		objects[objectOf(m)] = true
		e, pre := uriLookups(uri)
		exact, prefixes = append(exact, e...), append(prefixes, pre...)
	}
	if len(objects) == 0 {
		return 0, nil
	}
	// Sorted, so that the store's seeks move forward through its index.
	slices.Sort(exact)
	slices.Sort(prefixes)
	keys, err := r.st.SubscriptionKeysByURIs(ctx, providerName, slices.Compact(exact), slices.Compact(prefixes), maxSubsPerURI)
	if err != nil {
		return 0, fmt.Errorf("refresh: %w", err)
	}
	var marks []store.Subscription
	at := r.clock.Now().UTC()
	seen := make(map[store.SubscriptionKey]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if m, err := p.Match(k.URI); err != nil || !objects[objectOf(m)] {
			continue // another object whose link starts the same
		}
		marks = append(marks, store.Subscription{
			SubscriptionKey: k, UpdatedAt: at,
			Refresh: store.RefreshRecord{At: at, Trigger: TriggerWebhook, Outcome: OutcomePending},
		})
	}
	if len(marks) == 0 {
		return 0, nil
	}
	if err := r.marks.mark(ctx, marks); err != nil {
		return 0, fmt.Errorf("refresh: mark pending: %w", err)
	}
	r.wake()
	return len(marks), nil
}

// wake makes Run's claim loop claim pending marks now.
func (r *Refresher) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // a kick is already waiting
	}
}

// objectKey identifies the object a link names: its pattern and its
// captured groups, in name order.
type objectKey struct {
	pattern *provider.Pattern
	groups  string
}

// objectOf returns m's objectKey.
func objectOf(m *provider.Match) objectKey {
	names := slices.Sorted(maps.Keys(m.Groups))
	var b strings.Builder
	for _, n := range names {
		// NUL cannot occur in a group's name, and a value's length
		// prefix keeps "a"+"bc" apart from "ab"+"c".
		fmt.Fprintf(&b, "%s\x00%d:%s", n, len(m.Groups[n]), m.Groups[n])
	}
	return objectKey{pattern: m.Pattern, groups: b.String()}
}

// uriLookups lists where a link's subscriptions are stored: the link as
// given, with http or https, with or without www., each exactly (exact)
// and followed by a fragment, a path or a query (prefixes: "#", "/" and
// "?"). An exact lookup sees that URI's subscriptions only; a bare prefix
// would also walk every longer link of other objects (".../issues/1"
// before ".../issues/10", ".../issues/100", ...).
func uriLookups(uri string) (exact, prefixes []string) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || (scheme != "https" && scheme != "http") {
		exact = []string{uri}
	} else {
		host := strings.TrimPrefix(rest, "www.")
		for _, s := range []string{"https://", "http://"} {
			exact = append(exact, s+host, s+"www."+host)
		}
	}
	for _, b := range exact {
		for _, suffix := range []string{"#", "/", "?"} {
			prefixes = append(prefixes, b+suffix)
		}
	}
	return exact, prefixes
}

// Refresh fetches k's link again and brings Notion up to date: new
// attributes are pushed, an upstream 404/410 or 401/403 pushes the error
// operation (protocol 7.2), which the next normal update clears, and a
// 304 or a passing failure pushes nothing. The outcome and the upstream's
// validators are recorded on the subscription in the next batch. An error
// is a store failure.
func (r *Refresher) Refresh(ctx context.Context, k store.SubscriptionKey, trigger string) (Outcome, error) {
	return r.refreshNotify(ctx, k, trigger, false)
}

// refreshNotify is Refresh; dequeued is true for a job taken from the
// queue.
func (r *Refresher) refreshNotify(ctx context.Context, k store.SubscriptionKey, trigger string, dequeued bool) (Outcome, error) {
	out, err := r.refresh(ctx, k, trigger, dequeued)
	if err == nil && r.done != nil {
		r.done(k, out)
	}
	return out, err
}

func (r *Refresher) refresh(ctx context.Context, k store.SubscriptionKey, trigger string, dequeued bool) (Outcome, error) {
	unlock, err := r.lock(ctx, k, dequeued)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	// A job's claim checked the records in memory, but one may have
	// reached the store between the claim's read and that check: the
	// records in memory are looked at first and the store after, so a
	// record is seen in one or the other.
	var waiting store.Subscription
	var recorded bool
	if dequeued {
		r.mu.Lock()
		waiting, recorded = r.waitingRecord(k)
		r.mu.Unlock()
	}
	// The record's time is when this refresh began, before it read the
	// subscription and fetched: a pending mark made later is for a change
	// it may have missed, and must outlive its record (store.MergeSubscription).
	run := refreshRun{trigger: trigger, at: r.clock.Now().UTC()}
	sub, err := r.st.GetSubscription(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return Outcome{Deleted: true}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("refresh: %w", err)
	}
	if dequeued && (!sub.Pending() || (recorded && settles(waiting.Refresh, sub.Refresh))) {
		// A refresh that began after the mark has recorded itself: this
		// job's fetch would only repeat it.
		return Outcome{}, errSettled
	}
	p, ok := r.reg.Get(k.Provider)
	if !ok {
		return r.skip(ctx, sub, run, "provider is not configured")
	}
	conn, err := r.st.GetConnection(ctx, k.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		// DeleteConnection removes its subscriptions; one left over is
		// removed here (TH-40).
		if err := r.st.DeleteSubscription(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Outcome{}, fmt.Errorf("refresh: %w", err)
		}
		return Outcome{Deleted: true}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("refresh: %w", err)
	}
	opts := provider.UnfurlOptions{NoCache: true, Validators: provider.Validators{ETag: sub.ETag, LastModified: sub.LastModified}}
	start := r.clock.Now()
	res, err := r.unfurl(ctx, p, conn, k.URI, opts)
	elapsed := r.clock.Now().Sub(start)
	if cerr := ctx.Err(); cerr != nil {
		// Cancelled, not failed: nothing to record.
		return Outcome{}, cerr
	}
	out, err := r.settleFetch(ctx, sub, run, res, err)
	out.Elapsed = elapsed
	return out, err
}

// settleFetch acts on what the fetch of sub's link gave.
func (r *Refresher) settleFetch(ctx context.Context, sub store.Subscription, run refreshRun, res *provider.Result, err error) (Outcome, error) {
	switch {
	case errors.Is(err, connect.ErrReconnect):
		// The unfurl route and the deliverer deal with a connection that
		// needs a reconnect; fetching with no credential would only show
		// what an anonymous user sees.
		return r.skip(ctx, sub, run, "connection needs reconnecting")
	case err != nil && res == nil:
		return r.settleError(ctx, sub, run, provider.UpstreamInfo{}, err.Error(), false)
	case err != nil:
		return r.settleError(ctx, sub, run, res.Upstream, err.Error(), false)
	}
	return r.settle(ctx, sub, run, res)
}

// unfurl fetches uri as conn under connect.Service.Unfurl's policy.
// Without a connection service (tests of this package) there is no
// credential of a connection's own to use.
func (r *Refresher) unfurl(ctx context.Context, p *provider.Provider, conn store.Connection, uri string, opts provider.UnfurlOptions) (*provider.Result, error) {
	if r.creds != nil {
		return r.creds.Unfurl(ctx, p, conn, uri, opts)
	}
	if conn.Status == store.StatusReconnect {
		return nil, connect.ErrReconnect
	}
	return p.Unfurl(ctx, uri, provider.Credential{}, opts), nil
}

// transient reports whether an upstream failure should pass: rate
// limited (429, a Retry-After, or no requests remaining, which GitHub
// answers with 403), a 5xx, or a request that got no answer at all.
func transient(u provider.UpstreamInfo) bool {
	if u.Requests == 0 {
		return false
	}
	return u.Status == 0 || u.Status == 429 || u.Status >= 500 || u.RetryAfter > 0 ||
		(u.RateLimit.Known && u.RateLimit.Remaining == 0 && u.Status/100 != 2 && u.Status != 304)
}

// settle acts on a fresh result.
func (r *Refresher) settle(ctx context.Context, sub store.Subscription, run refreshRun, res *provider.Result) (Outcome, error) {
	up := res.Upstream
	switch {
	case res.NotModified:
		rec := r.story(run, OutcomeNotModified, 304, "")
		r.note(ctx, sub, provider.Validators{ETag: sub.ETag, LastModified: sub.LastModified}, rec)
		return Outcome{Record: rec, Upstream: up}, nil
	case res.Error == nil:
		queued, err := r.push.Push(ctx, sub.SubscriptionKey, res.Body, res.Hash)
		if err != nil {
			return Outcome{}, fmt.Errorf("refresh: %w", err)
		}
		rec := r.story(run, OutcomeUnchanged, up.Status, "")
		if queued {
			rec.Outcome = OutcomeChanged
		}
		r.note(ctx, sub, up.Validators, rec)
		return Outcome{Record: rec, Queued: queued, Upstream: up}, nil
	case transient(up):
		return r.settleError(ctx, sub, run, up, upstreamDetail(up), true)
	case up.Requests == 0 && res.Error.Status == 503:
		// Nothing was sent: too many upstream requests in flight here.
		return r.settleError(ctx, sub, run, up, "too many upstream requests in flight", true)
	case res.Error.Status == 404 || res.Error.Status == 401 || res.Error.Status == 403:
		// Gone or forbidden: Notion shows the error operation, exactly
		// the unfurl route's answer (protocol 5.4, 7.2).
		queued, err := r.push.Push(ctx, sub.SubscriptionKey, res.Body, res.Hash)
		if err != nil {
			return Outcome{}, fmt.Errorf("refresh: %w", err)
		}
		status := cmp.Or(up.Status, res.Error.Status)
		rec := r.story(run, OutcomeGone, status, fmt.Sprintf("error operation %d", res.Error.Status))
		r.note(ctx, sub, provider.Validators{}, rec)
		return Outcome{Record: rec, Queued: queued, Upstream: up}, nil
	default:
		// A link no longer usable (400) or an answer that is not JSON: the
		// same request would fail the same way, but it may be fixed
		// upstream, so Notion keeps what it has.
		return r.settleError(ctx, sub, run, up, fmt.Sprintf("%s; error operation %d not pushed", upstreamDetail(up), res.Error.Status), false)
	}
}

// upstreamDetail describes an upstream failure without its body (TH-36).
func upstreamDetail(u provider.UpstreamInfo) string {
	switch {
	case u.Status == 0:
		return "no answer from the upstream"
	case u.RetryAfter > 0:
		return fmt.Sprintf("upstream status %d, retry after %s", u.Status, u.RetryAfter)
	default:
		return fmt.Sprintf("upstream status %d", u.Status)
	}
}

// settleError records a failed refresh; nothing is pushed and the
// validators stay.
func (r *Refresher) settleError(ctx context.Context, sub store.Subscription, run refreshRun, up provider.UpstreamInfo, detail string, isTransient bool) (Outcome, error) {
	rec := r.story(run, OutcomeError, up.Status, detail)
	if isTransient && run.trigger == TriggerWebhook {
		// A webhook acknowledged a change we could not fetch yet (429,
		// 5xx, timeout): the mark stays, and a claim once its lease runs
		// out (DefaultPendingLease) tries again, so the change is not left
		// to a poll that may be off.
		rec.Outcome, rec.Detail = OutcomePending, "retrying after: "+detail
	}
	r.note(ctx, sub, provider.Validators{ETag: sub.ETag, LastModified: sub.LastModified}, rec)
	return Outcome{Record: rec, Transient: isTransient, Upstream: up}, nil
}

// skip records a refresh that fetched nothing.
func (r *Refresher) skip(ctx context.Context, sub store.Subscription, run refreshRun, detail string) (Outcome, error) {
	rec := r.story(run, OutcomeSkipped, 0, detail)
	r.note(ctx, sub, provider.Validators{ETag: sub.ETag, LastModified: sub.LastModified}, rec)
	return Outcome{Record: rec}, nil
}

// errSettled is a queued job's answer when its mark was settled after
// the claim that queued it; nothing ran and nothing is reported.
var errSettled = errors.New("pending mark already settled")

// waitingRecord returns k's refresh record not yet in the store: waiting
// for the next flush, or being written. r.mu must be held.
func (r *Refresher) waitingRecord(k store.SubscriptionKey) (store.Subscription, bool) {
	if s, ok := r.pending[k]; ok {
		return s, true
	}
	s, ok := r.writing[k]
	return s, ok
}

// settles reports whether the record rec of a refresh clears the pending
// mark: the refresh began at or after the mark was made
// (store.MergeSubscription).
func settles(rec, mark store.RefreshRecord) bool { return !rec.At.Before(mark.At) }

// refreshRun is what one refresh records about itself: why it ran and
// when it began.
type refreshRun struct {
	trigger string
	at      time.Time
}

func (r *Refresher) story(run refreshRun, outcome string, status int, detail string) store.RefreshRecord {
	return store.RefreshRecord{At: run.at, Trigger: run.trigger, Outcome: outcome, Status: status, Detail: detail}
}

// keyLock is one key's entry in Refresher.running: a one-slot semaphore,
// and how many refreshes hold or wait for it.
type keyLock struct {
	sem  chan struct{}
	refs int
}

// lock waits until no other refresh of k runs, or ctx ends, and returns
// the function that lets the next one go. A job taken from the queue
// (dequeued) leaves queued as it joins running, in one step, so that a
// scan never sees it in neither and queues it twice; an event arriving
// from then on gets a job of its own.
func (r *Refresher) lock(ctx context.Context, k store.SubscriptionKey, dequeued bool) (func(), error) {
	r.mu.Lock()
	if dequeued {
		delete(r.queued, k)
	}
	l := r.running[k]
	if l == nil {
		l = &keyLock{sem: make(chan struct{}, 1)}
		r.running[k] = l
	}
	l.refs++
	r.mu.Unlock()
	release := func(held bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if held {
			<-l.sem
		}
		if l.refs--; l.refs == 0 {
			delete(r.running, k)
		}
	}
	select {
	case l.sem <- struct{}{}:
		return func() { release(true) }, nil
	case <-ctx.Done():
		release(false)
		return nil, ctx.Err()
	}
}

// note queues the record of a refresh for the next batch; a put with a
// Refresh only updates the validators and the story of a subscription
// that still exists (store.MergeSubscription). A refresh that tells the
// stored story again, but for its time, with the same validators, is not
// written (issue 11: a poll that finds no change writes only its next
// poll time, to the schedule); a pending mark is always settled.
func (r *Refresher) note(ctx context.Context, sub store.Subscription, v provider.Validators, rec store.RefreshRecord) {
	old := sub.Refresh
	same := old.Outcome != OutcomePending && rec.Outcome != OutcomePending && old.Trigger == rec.Trigger &&
		old.Outcome == rec.Outcome && old.Status == rec.Status && old.Detail == rec.Detail &&
		sub.ETag == v.ETag && sub.LastModified == v.LastModified
	r.mu.Lock()
	if _, waiting := r.waitingRecord(sub.SubscriptionKey); same && !waiting {
		// A waiting record of an earlier refresh would otherwise be the
		// last word.
		r.mu.Unlock()
		return
	}
	r.pending[sub.SubscriptionKey] = store.Subscription{
		SubscriptionKey: sub.SubscriptionKey, ETag: v.ETag, LastModified: v.LastModified,
		Refresh: rec, UpdatedAt: rec.At,
	}
	full := len(r.pending) >= maxPendingRecords
	r.mu.Unlock()
	if full {
		if err := r.Flush(ctx); err != nil {
			r.log.WarnContext(ctx, "live refresh records", "err", err)
		}
	}
}

// Flush writes the pending refresh records in one PutSubscriptions, in key
// order. Records that fail to write are kept for the next flush, as many
// as fit under the bound on waiting records; the rest are dropped: they
// are a status aid, the next refresh writes its own, and a pending mark
// one of them would have cleared stays and is refreshed again.
func (r *Refresher) Flush(ctx context.Context) error {
	_, err := r.flush(ctx)
	return err
}

// flush is Flush; it says how many records it wrote.
func (r *Refresher) flush(ctx context.Context) (int, error) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return 0, nil
	}
	// The batch stays visible (writing) until the store has answered.
	r.writing, r.pending = r.pending, map[store.SubscriptionKey]store.Subscription{}
	batch := slices.Collect(maps.Values(r.writing))
	r.mu.Unlock()
	slices.SortFunc(batch, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
			strings.Compare(a.URI, b.URI))
	})
	_, err := r.st.PutSubscriptions(ctx, batch)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writing = nil
	if err != nil {
		// Kept for the next flush (Run's last one, when its ctx ended
		// during this one), unless newer or too many: each clears a
		// pending mark, which otherwise costs a refresh more.
		for _, s := range batch {
			if _, newer := r.pending[s.SubscriptionKey]; !newer && len(r.pending) < maxPendingRecords {
				r.pending[s.SubscriptionKey] = s
			}
		}
		return 0, fmt.Errorf("record refreshes: %w", err)
	}
	return len(batch), nil
}
