package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// errStopConnection tells deliverConn that the connection's remaining
// items were dropped: sending them is pointless.
var errStopConnection = errors.New("connection stopped")

// deliverConn sends one connection's items in order. Sending them one
// after another rather than at once means a dead token costs exactly one
// 401 (F9) and a 429 holds the items behind it.
func (d *Deliverer) deliverConn(ctx context.Context, items []store.OutboxItem) error {
	for _, it := range items {
		d.mu.Lock()
		hold := d.pacer(it.ConnectionID).hold
		d.mu.Unlock()
		if now := d.clock.Now(); now.Before(hold) {
			if _, err := d.st.RescheduleOutbox(ctx, []store.OutboxUpdate{update(it, hold)}); err != nil {
				return fmt.Errorf("deliver: %w", err)
			}
			continue
		}
		err := d.deliver(ctx, it)
		if errors.Is(err, errStopConnection) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deliver sends one item and settles the outcome in the store. It returns
// errStopConnection when the connection's items were dropped, and other
// errors only for store failures or the end of ctx.
func (d *Deliverer) deliver(ctx context.Context, it store.OutboxItem) error {
	k := it.SubscriptionKey
	// The last check before sending: the URI or the grant may have been
	// deleted since the item was queued (TH-52: no PATCH after a
	// deletion).
	if _, err := d.st.GetSubscription(ctx, k); errors.Is(err, store.ErrNotFound) {
		_, err = d.st.DeleteOutboxItem(ctx, k, 0)
		return storeErr(err)
	} else if err != nil {
		return storeErr(err)
	}
	conn, err := d.st.GetConnection(ctx, k.ConnectionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return d.dropConnection(ctx, it, errors.New("connection is gone"))
	case err != nil:
		return storeErr(err)
	case conn.Status == store.StatusReconnect:
		// Flagged after a 401/403 or a broken seal: nothing goes until the
		// user reconnects (TH-52: stop on 401/403).
		return d.dropConnection(ctx, it, errors.New("connection needs a reconnect"))
	case len(conn.NotionToken) == 0:
		// A connection made without Notion's flow (a development token)
		// cannot be pushed to; that is no reason to flag it.
		return d.dropConnection(ctx, it, errors.New("connection has no notion token"))
	}
	plain, err := sealing.OpenConnectionField(d.keys, conn, sealing.FieldNotionToken, conn.NotionToken)
	if err != nil {
		// A retired key or a tampered record: the token is lost, as after
		// a 401 (TH-42).
		return d.stopConnection(ctx, it, err)
	}
	env, err := decodeEnvelope(it)
	if err != nil {
		return d.drop(ctx, it, err)
	}
	err = d.nt.UpdateObject(ctx, config.Secret(plain), env)
	return d.settle(ctx, it, err)
}

// settle records the outcome of a send (protocol 7.4, security.md F8-F9).
func (d *Deliverer) settle(ctx context.Context, it store.OutboxItem, sendErr error) error {
	now := d.clock.Now()
	var apiErr *notion.APIError
	isStatus := func(code int) bool { return errors.As(sendErr, &apiErr) && apiErr.Status == code }
	switch {
	case sendErr == nil:
		if err := d.st.AckOutbox(ctx, it, now); err != nil {
			return storeErr(err)
		}
		d.record(it.Provider, now, ResultDelivered, nil)
		return nil
	case ctx.Err() != nil:
		// Shutting down: the attempt does not count and the item stays.
		return ctx.Err()
	case notion.IsAuth(sendErr):
		return d.stopConnection(ctx, it, sendErr)
	case isStatus(http.StatusNotFound):
		// The preview is gone: drop the subscription (protocol 7.3).
		if err := d.st.DeleteSubscription(ctx, it.SubscriptionKey); err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr(err)
		}
		if _, err := d.st.DeleteOutboxItem(ctx, it.SubscriptionKey, 0); err != nil {
			return storeErr(err)
		}
		d.record(it.Provider, now, ResultFailed, sendErr)
		d.log.WarnContext(ctx, "notion push: preview gone, subscription dropped",
			"provider", it.Provider, "uri", it.URI, "err", sendErr)
		return nil
	case notion.IsRateLimited(sendErr):
		wait := time.Duration(0)
		if errors.As(sendErr, &apiErr) {
			wait = apiErr.RetryAfter
		}
		if wait <= 0 {
			wait = d.backoff(it.Attempts + 1)
		}
		until := now.Add(wait)
		if err := d.disp.hold(ctx, it.ConnectionID, until); err != nil {
			return storeErr(err)
		}
		return d.retry(ctx, it, now, until, sendErr)
	case notion.IsRetryable(sendErr), isStatus(http.StatusConflict):
		// 5xx and network errors, and 409 conflict_error, which Notion
		// documents as "try again" (protocol 7.4).
		return d.retry(ctx, it, now, now.Add(d.backoff(it.Attempts+1)), sendErr)
	default:
		// 400 and the like: the same body would fail the same way (F9).
		return d.drop(ctx, it, sendErr)
	}
}

// retry schedules the next attempt at next, or gives up when that would
// pass MaxAttempts or MaxAge (TH-52).
func (d *Deliverer) retry(ctx context.Context, it store.OutboxItem, now, next time.Time, sendErr error) error {
	attempts := it.Attempts + 1
	switch {
	case attempts >= d.maxAttempts:
		return d.drop(ctx, it, fmt.Errorf("gave up after %d attempts: %w", attempts, sendErr))
	case next.Sub(it.EnqueuedAt) > d.maxAge:
		return d.drop(ctx, it, fmt.Errorf("gave up after %d attempts, next one past %s: %w", attempts, d.maxAge, sendErr))
	}
	u := store.OutboxUpdate{SubscriptionKey: it.SubscriptionKey, Seq: it.Seq, NextAt: next, Attempts: attempts, LastError: sendErr.Error()}
	if _, err := d.st.RescheduleOutbox(ctx, []store.OutboxUpdate{u}); err != nil {
		return storeErr(err)
	}
	d.record(it.Provider, now, ResultRetry, sendErr)
	d.log.WarnContext(ctx, "notion push failed, will retry", "provider", it.Provider, "uri", it.URI,
		"attempts", attempts, "retry_in", next.Sub(now), "err", sendErr)
	return nil
}

// drop removes this state of the item for good. A newer state, queued
// meanwhile, stays.
func (d *Deliverer) drop(ctx context.Context, it store.OutboxItem, cause error) error {
	if _, err := d.st.DeleteOutboxItem(ctx, it.SubscriptionKey, it.Seq); err != nil {
		return storeErr(err)
	}
	// The queued item, which showed the last error, is gone: the
	// connection keeps the failure for `unfurld status --connection`.
	// Only a push given up on costs this write.
	ev := pushEvent(d.clock.Now(), it, cause)
	err := d.st.UpdateConnection(ctx, it.ConnectionID, func(c store.Connection) (store.Connection, error) {
		return c.WithFailure(ev), nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	d.record(it.Provider, d.clock.Now(), ResultFailed, cause)
	d.log.ErrorContext(ctx, "notion push dropped", "provider", it.Provider, "uri", it.URI,
		"attempts", it.Attempts+1, "err", cause)
	return nil
}

// dropConnection removes every item of it.ConnectionID without sending.
func (d *Deliverer) dropConnection(ctx context.Context, it store.OutboxItem, cause error) error {
	n, err := d.st.DeleteOutboxByConnection(ctx, it.ConnectionID)
	if err != nil {
		return storeErr(err)
	}
	d.record(it.Provider, d.clock.Now(), ResultFailed, cause)
	d.log.WarnContext(ctx, "notion push skipped", "provider", it.Provider, "connection", it.ConnectionID,
		"dropped", n, "err", cause)
	return errStopConnection
}

// stopConnection flags the connection for a reconnect and drops its
// items: Notion refused its token (401/403), or the token cannot be
// opened. Nothing more is sent for it (TH-52, F9).
func (d *Deliverer) stopConnection(ctx context.Context, it store.OutboxItem, cause error) error {
	now := d.clock.Now()
	why := pushEvent(now, it, cause)
	err := d.st.UpdateConnection(ctx, it.ConnectionID, func(c store.Connection) (store.Connection, error) {
		c.Status, c.UpdatedAt, c.Reconnect = store.StatusReconnect, now, why
		return c, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	n, err := d.st.DeleteOutboxByConnection(ctx, it.ConnectionID)
	if err != nil {
		return storeErr(err)
	}
	d.record(it.Provider, now, ResultFailed, cause)
	d.log.ErrorContext(ctx, "notion push stopped, connection needs a reconnect", "provider", it.Provider,
		"connection", it.ConnectionID, "dropped", n, "err", cause)
	return errStopConnection
}

// backoff is the wait after n failures, jittered.
func (d *Deliverer) backoff(n int) time.Duration {
	return backoff(n, d.baseBackoff, d.maxDelay, d.jitter, d.rand())
}

// storeErr wraps a store failure; nil stays nil.
func storeErr(err error) error {
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}

// decodeEnvelope reads an item's body for UpdateObject. The operations'
// set values are kept as raw JSON, so exactly what was queued is sent.
// The envelope's uri must be the subscription's: a token is only used
// for the URI its connection unfurled (protocol 7.3).
func decodeEnvelope(it store.OutboxItem) (notion.Envelope, error) {
	var raw struct {
		URI        string `json:"uri"`
		Operations []struct {
			Path []string        `json:"path"`
			Set  json.RawMessage `json:"set"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(it.Body, &raw); err != nil {
		return notion.Envelope{}, fmt.Errorf("queued body: %w", err)
	}
	if raw.URI != it.URI {
		return notion.Envelope{}, errors.New("queued body: uri differs from the subscription's")
	}
	if len(raw.Operations) == 0 {
		return notion.Envelope{}, errors.New("queued body: no operations")
	}
	env := notion.Envelope{URI: raw.URI, Operations: make([]notion.Operation, 0, len(raw.Operations))}
	for _, op := range raw.Operations {
		env.Operations = append(env.Operations, notion.Operation{Path: op.Path, Set: op.Set})
	}
	return env, nil
}

// pushEvent describes a failed PATCH for the connection's record: the
// status Notion answered, if any, and the error, which never holds the
// token (notion.APIError strips what we sent).
func pushEvent(at time.Time, it store.OutboxItem, cause error) store.ConnectionEvent {
	ev := store.ConnectionEvent{At: at.UTC(), Call: "notion push", URI: it.URI, Detail: cause.Error()}
	var apiErr *notion.APIError
	if errors.As(cause, &apiErr) {
		ev.Status = apiErr.Status
	}
	return ev
}
