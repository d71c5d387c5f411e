package store

import (
	"context"
	"time"
)

// Observer learns of every store operation: its name (the method's),
// how long it took and its error, for metrics. It runs on the caller's
// goroutine and must not block. engine/metrics fills one in; this
// package stays free of any metrics library.
type Observer func(op string, d time.Duration, err error)

// Observe wraps st so that obs sees every operation. The wrapper owns
// nothing more than st: its Close closes st.
func Observe(st Store, obs Observer) Store {
	return &observed{Store: st, obs: obs}
}

// observed times each method of the Store interface. It embeds st so
// that it stays a Store; a method added to the interface without a
// timed override here passes through untimed until one is written.
type observed struct {
	Store
	obs Observer
}

var _ Store = (*observed)(nil)

// CreateFlow implements Store, timed.
func (o *observed) CreateFlow(ctx context.Context, f Flow, maxLive int) error {
	start := time.Now()
	err := o.Store.CreateFlow(ctx, f, maxLive)
	o.obs("CreateFlow", time.Since(start), err)
	return err
}

// GetFlow implements Store, timed.
func (o *observed) GetFlow(ctx context.Context, id string, now time.Time) (Flow, error) {
	start := time.Now()
	r0, err := o.Store.GetFlow(ctx, id, now)
	o.obs("GetFlow", time.Since(start), err)
	return r0, err
}

// UpdateFlow implements Store, timed.
func (o *observed) UpdateFlow(ctx context.Context, id string, now time.Time, fn func(Flow) (Flow, error)) error {
	start := time.Now()
	err := o.Store.UpdateFlow(ctx, id, now, fn)
	o.obs("UpdateFlow", time.Since(start), err)
	return err
}

// DeleteFlow implements Store, timed.
func (o *observed) DeleteFlow(ctx context.Context, id string) (bool, error) {
	start := time.Now()
	r0, err := o.Store.DeleteFlow(ctx, id)
	o.obs("DeleteFlow", time.Since(start), err)
	return r0, err
}

// ConsumeToken implements Store, timed.
func (o *observed) ConsumeToken(ctx context.Context, c Consume) ([]Token, Token, error) {
	start := time.Now()
	r0, r1, err := o.Store.ConsumeToken(ctx, c)
	o.obs("ConsumeToken", time.Since(start), err)
	return r0, r1, err
}

// RevokeGrant implements Store, timed.
func (o *observed) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	start := time.Now()
	r0, err := o.Store.RevokeGrant(ctx, grantID)
	o.obs("RevokeGrant", time.Since(start), err)
	return r0, err
}

// UpsertConnection implements Store, timed.
func (o *observed) UpsertConnection(ctx context.Context, c Connection) (Connection, bool, error) {
	start := time.Now()
	r0, r1, err := o.Store.UpsertConnection(ctx, c)
	o.obs("UpsertConnection", time.Since(start), err)
	return r0, r1, err
}

// Sweep implements Store, timed.
func (o *observed) Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (SweepResult, error) {
	start := time.Now()
	r0, err := o.Store.Sweep(ctx, now, retainConsumed)
	o.obs("Sweep", time.Since(start), err)
	return r0, err
}

// Enqueue implements Store, timed.
func (o *observed) Enqueue(ctx context.Context, it OutboxItem) (uint64, error) {
	start := time.Now()
	r0, err := o.Store.Enqueue(ctx, it)
	o.obs("Enqueue", time.Since(start), err)
	return r0, err
}

// GetOutboxItem implements Store, timed.
func (o *observed) GetOutboxItem(ctx context.Context, k SubscriptionKey) (OutboxItem, error) {
	start := time.Now()
	r0, err := o.Store.GetOutboxItem(ctx, k)
	o.obs("GetOutboxItem", time.Since(start), err)
	return r0, err
}

// DueOutbox implements Store, timed.
func (o *observed) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error) {
	start := time.Now()
	r0, err := o.Store.DueOutbox(ctx, now, limit)
	o.obs("DueOutbox", time.Since(start), err)
	return r0, err
}

// RescheduleOutbox implements Store, timed.
func (o *observed) RescheduleOutbox(ctx context.Context, updates []OutboxUpdate) (int, error) {
	start := time.Now()
	r0, err := o.Store.RescheduleOutbox(ctx, updates)
	o.obs("RescheduleOutbox", time.Since(start), err)
	return r0, err
}

// AckOutbox implements Store, timed.
func (o *observed) AckOutbox(ctx context.Context, sent OutboxItem, at time.Time) error {
	start := time.Now()
	err := o.Store.AckOutbox(ctx, sent, at)
	o.obs("AckOutbox", time.Since(start), err)
	return err
}

// DeleteOutboxItem implements Store, timed.
func (o *observed) DeleteOutboxItem(ctx context.Context, k SubscriptionKey, seq uint64) (bool, error) {
	start := time.Now()
	r0, err := o.Store.DeleteOutboxItem(ctx, k, seq)
	o.obs("DeleteOutboxItem", time.Since(start), err)
	return r0, err
}

// DeleteOutboxByConnection implements Store, timed.
func (o *observed) DeleteOutboxByConnection(ctx context.Context, connectionID string) (int, error) {
	start := time.Now()
	r0, err := o.Store.DeleteOutboxByConnection(ctx, connectionID)
	o.obs("DeleteOutboxByConnection", time.Since(start), err)
	return r0, err
}

// DeleteOutboxByURI implements Store, timed.
func (o *observed) DeleteOutboxByURI(ctx context.Context, provider, uri string) (int, error) {
	start := time.Now()
	r0, err := o.Store.DeleteOutboxByURI(ctx, provider, uri)
	o.obs("DeleteOutboxByURI", time.Since(start), err)
	return r0, err
}

// OutboxDepth implements Store, timed.
func (o *observed) OutboxDepth(ctx context.Context) (map[string]int, error) {
	start := time.Now()
	r0, err := o.Store.OutboxDepth(ctx)
	o.obs("OutboxDepth", time.Since(start), err)
	return r0, err
}

// ListFlows implements Store, timed.
func (o *observed) ListFlows(ctx context.Context) ([]Flow, error) {
	start := time.Now()
	r0, err := o.Store.ListFlows(ctx)
	o.obs("ListFlows", time.Since(start), err)
	return r0, err
}

// ListSuccessors implements Store, timed.
func (o *observed) ListSuccessors(ctx context.Context) ([]Token, error) {
	start := time.Now()
	r0, err := o.Store.ListSuccessors(ctx)
	o.obs("ListSuccessors", time.Since(start), err)
	return r0, err
}

// UpdateSuccessor implements Store, timed.
func (o *observed) UpdateSuccessor(ctx context.Context, digest string, fn func(Token) ([]byte, error)) error {
	start := time.Now()
	err := o.Store.UpdateSuccessor(ctx, digest, fn)
	o.obs("UpdateSuccessor", time.Since(start), err)
	return err
}

// CreateToken implements Store, timed.
func (o *observed) CreateToken(ctx context.Context, t Token) error {
	start := time.Now()
	err := o.Store.CreateToken(ctx, t)
	o.obs("CreateToken", time.Since(start), err)
	return err
}

// GetToken implements Store, timed.
func (o *observed) GetToken(ctx context.Context, kind TokenKind, digest string) (Token, error) {
	start := time.Now()
	r0, err := o.Store.GetToken(ctx, kind, digest)
	o.obs("GetToken", time.Since(start), err)
	return r0, err
}

// DeleteToken implements Store, timed.
func (o *observed) DeleteToken(ctx context.Context, digest string) error {
	start := time.Now()
	err := o.Store.DeleteToken(ctx, digest)
	o.obs("DeleteToken", time.Since(start), err)
	return err
}

// CreateConnection implements Store, timed.
func (o *observed) CreateConnection(ctx context.Context, c Connection) error {
	start := time.Now()
	err := o.Store.CreateConnection(ctx, c)
	o.obs("CreateConnection", time.Since(start), err)
	return err
}

// GetConnection implements Store, timed.
func (o *observed) GetConnection(ctx context.Context, id string) (Connection, error) {
	start := time.Now()
	r0, err := o.Store.GetConnection(ctx, id)
	o.obs("GetConnection", time.Since(start), err)
	return r0, err
}

// UpdateConnection implements Store, timed.
func (o *observed) UpdateConnection(ctx context.Context, id string, fn func(Connection) (Connection, error)) error {
	start := time.Now()
	err := o.Store.UpdateConnection(ctx, id, fn)
	o.obs("UpdateConnection", time.Since(start), err)
	return err
}

// DeleteConnection implements Store, timed.
func (o *observed) DeleteConnection(ctx context.Context, id string) error {
	start := time.Now()
	err := o.Store.DeleteConnection(ctx, id)
	o.obs("DeleteConnection", time.Since(start), err)
	return err
}

// ListConnections implements Store, timed.
func (o *observed) ListConnections(ctx context.Context, provider string) ([]Connection, error) {
	start := time.Now()
	r0, err := o.Store.ListConnections(ctx, provider)
	o.obs("ListConnections", time.Since(start), err)
	return r0, err
}

// PutSubscription implements Store, timed.
func (o *observed) PutSubscription(ctx context.Context, s Subscription) (bool, error) {
	start := time.Now()
	r0, err := o.Store.PutSubscription(ctx, s)
	o.obs("PutSubscription", time.Since(start), err)
	return r0, err
}

// PutSubscriptions implements Store, timed.
func (o *observed) PutSubscriptions(ctx context.Context, subs []Subscription) (int, error) {
	start := time.Now()
	r0, err := o.Store.PutSubscriptions(ctx, subs)
	o.obs("PutSubscriptions", time.Since(start), err)
	return r0, err
}

// GetSubscription implements Store, timed.
func (o *observed) GetSubscription(ctx context.Context, k SubscriptionKey) (Subscription, error) {
	start := time.Now()
	r0, err := o.Store.GetSubscription(ctx, k)
	o.obs("GetSubscription", time.Since(start), err)
	return r0, err
}

// DeleteSubscription implements Store, timed.
func (o *observed) DeleteSubscription(ctx context.Context, k SubscriptionKey) error {
	start := time.Now()
	err := o.Store.DeleteSubscription(ctx, k)
	o.obs("DeleteSubscription", time.Since(start), err)
	return err
}

// DeleteSubscriptionsByURI implements Store, timed.
func (o *observed) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	start := time.Now()
	r0, err := o.Store.DeleteSubscriptionsByURI(ctx, provider, uri)
	o.obs("DeleteSubscriptionsByURI", time.Since(start), err)
	return r0, err
}

// ListSubscriptions implements Store, timed.
func (o *observed) ListSubscriptions(ctx context.Context, provider string, fn func(Subscription) error) error {
	start := time.Now()
	err := o.Store.ListSubscriptions(ctx, provider, fn)
	o.obs("ListSubscriptions", time.Since(start), err)
	return err
}

// SubscriptionKeysByURIs implements Store, timed.
func (o *observed) SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]SubscriptionKey, error) {
	start := time.Now()
	r0, err := o.Store.SubscriptionKeysByURIs(ctx, provider, uris, prefixes, limit)
	o.obs("SubscriptionKeysByURIs", time.Since(start), err)
	return r0, err
}

// ListSubscriptionsByURIPrefix implements Store, timed.
func (o *observed) ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]Subscription, error) {
	start := time.Now()
	r0, err := o.Store.ListSubscriptionsByURIPrefix(ctx, provider, prefix, limit)
	o.obs("ListSubscriptionsByURIPrefix", time.Since(start), err)
	return r0, err
}

// Probe implements Store, timed.
func (o *observed) Probe(ctx context.Context) error {
	start := time.Now()
	err := o.Store.Probe(ctx)
	o.obs("Probe", time.Since(start), err)
	return err
}

// ClaimDuePolls implements Store, timed.
func (o *observed) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, lease time.Duration, limit int) ([]Subscription, error) {
	start := time.Now()
	r0, err := o.Store.ClaimDuePolls(ctx, provider, owner, now, lease, limit)
	o.obs("ClaimDuePolls", time.Since(start), err)
	return r0, err
}

// NextPollDue implements Store, timed.
func (o *observed) NextPollDue(ctx context.Context, provider string, now time.Time) (time.Time, bool, error) {
	start := time.Now()
	r0, r1, err := o.Store.NextPollDue(ctx, provider, now)
	o.obs("NextPollDue", time.Since(start), err)
	return r0, r1, err
}

// SchedulePolls implements Store, timed.
func (o *observed) SchedulePolls(ctx context.Context, owner string, next []PollSlot) (int, error) {
	start := time.Now()
	r0, err := o.Store.SchedulePolls(ctx, owner, next)
	o.obs("SchedulePolls", time.Since(start), err)
	return r0, err
}

// ClaimPending implements Store, timed.
func (o *observed) ClaimPending(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Subscription, error) {
	start := time.Now()
	r0, err := o.Store.ClaimPending(ctx, owner, now, lease, limit)
	o.obs("ClaimPending", time.Since(start), err)
	return r0, err
}

// ExpireSubscriptions implements Store, timed.
func (o *observed) ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]SubscriptionKey, error) {
	start := time.Now()
	r0, err := o.Store.ExpireSubscriptions(ctx, provider, before, limit)
	o.obs("ExpireSubscriptions", time.Since(start), err)
	return r0, err
}

// ScheduleCounts implements Store, timed.
func (o *observed) ScheduleCounts(ctx context.Context, provider string, now time.Time) (ScheduleCounts, error) {
	start := time.Now()
	r0, err := o.Store.ScheduleCounts(ctx, provider, now)
	o.obs("ScheduleCounts", time.Since(start), err)
	return r0, err
}
