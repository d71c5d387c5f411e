package sealing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// DefaultResealRate is how many records the Resealer re-seals per second.
// Each re-seal is one committed, fsync'd write transaction holding the
// store's single write lock; 20 a second keeps that to a small share of a
// slow disk's budget, so unfurls and token requests barely notice, and
// still moves 10,000 connections in under ten minutes.
const DefaultResealRate = 20

// ResealerOptions configure a Resealer.
type ResealerOptions struct {
	Store   store.Store
	Keyring *Keyring
	// Logger receives a line per pass and per record left behind; nil
	// discards.
	Logger *slog.Logger
	// Now is the clock for flow expiry; nil means time.Now.
	Now func() time.Time
	// After waits between batches, like time.After (nil); tests make it
	// fire at once instead of sleeping.
	After func(time.Duration) <-chan time.Time
	// Rate is the records re-sealed per second; 0 means
	// DefaultResealRate.
	Rate int
}

// sealedRef names one record holding sealed bytes.
type sealedRef struct {
	kind string // "connection", "flow" or "successor"
	id   string
}

// Resealer moves every record sealed with an older key of the keyring to
// the primary key (security.md TH-42), a batch per second. Each record is
// re-sealed in the store's own read-modify-write (UpdateConnection,
// UpdateFlow, UpdateSuccessor), under the same aad, so a concurrent
// writer never loses an update, and a crash leaves every record whole,
// sealed with the old key or the new one (F2). It keeps no state on
// disk: after a restart it simply scans again. A record whose key the
// keyring lacks is never touched: it already answers "reconnect
// required", and the old key may yet come back.
//
// A Resealer is used by one goroutine.
type Resealer struct {
	opts  ResealerOptions
	log   *slog.Logger
	queue []sealedRef
	// skip holds records found broken (they fail to open with a key the
	// keyring has), so they are reported once and not retried forever.
	skip map[sealedRef]bool
	// resealed counts the records moved in the current pass.
	resealed int
}

// NewResealer builds a Resealer.
func NewResealer(opts ResealerOptions) *Resealer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Rate <= 0 {
		opts.Rate = DefaultResealRate
	}
	return &Resealer{opts: opts, log: opts.Logger, skip: map[sealedRef]bool{}}
}

// Run re-seals at the configured rate until nothing is left to move or
// ctx ends. A store error is logged and retried a second later.
func (r *Resealer) Run(ctx context.Context) {
	for {
		done, err := r.Step(ctx, r.opts.Rate)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.WarnContext(ctx, "re-seal", "err", err)
		case done:
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.opts.After(time.Second):
		}
	}
}

// Step re-seals up to n records. When its queue is empty it scans the
// store first; it reports done when a scan finds nothing left to move.
// Each drained queue is followed by another scan, which catches whatever
// the pass could not see; the records that cannot move (broken, failed,
// or under a key the keyring lacks) are not queued again, so the passes
// end.
func (r *Resealer) Step(ctx context.Context, n int) (done bool, err error) {
	if len(r.queue) == 0 {
		if r.resealed > 0 {
			r.log.InfoContext(ctx, "re-sealed records with the primary key", "records", r.resealed, "key", r.opts.Keyring.PrimaryID())
			r.resealed = 0
		}
		if r.queue, err = r.scan(ctx); err != nil {
			return false, err
		}
		if len(r.queue) == 0 {
			return true, nil
		}
	}
	for n > 0 && len(r.queue) > 0 {
		ref := r.queue[0]
		moved, err := r.reseal(ctx, ref)
		if err != nil {
			// A record the store fails on is passed over until the next
			// start, so that it is reported once rather than every
			// second; one interrupted by ctx is kept for the next Step.
			if ctx.Err() == nil {
				r.skip[ref] = true
				r.queue = r.queue[1:]
			}
			return false, err
		}
		r.queue = r.queue[1:]
		if moved {
			r.resealed++
		}
		n--
	}
	return false, nil
}

// movable reports whether sealed was made with an older key the keyring
// still holds.
func (r *Resealer) movable(sealed []byte) bool {
	id, ok := SealedKeyID(sealed)
	return ok && r.opts.Keyring.NeedsReseal(sealed) && r.opts.Keyring.holds(id)
}

// scan lists the records holding a value to move, connections first.
func (r *Resealer) scan(ctx context.Context) ([]sealedRef, error) {
	var refs []sealedRef
	add := func(ref sealedRef) {
		if !r.skip[ref] {
			refs = append(refs, ref)
		}
	}
	conns, err := r.opts.Store.ListConnections(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("scan connections: %w", err)
	}
	for _, c := range conns {
		if r.movable(c.NotionToken) || r.movable(c.UpstreamCredential) {
			add(sealedRef{"connection", c.ID})
		}
	}
	flows, err := r.opts.Store.ListFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan flows: %w", err)
	}
	now := r.opts.Now()
	for _, f := range flows {
		if r.movable(f.Data) && !flowExpired(f, now) {
			add(sealedRef{"flow", f.ID})
		}
	}
	toks, err := r.opts.Store.ListSuccessors(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan refresh successors: %w", err)
	}
	for _, t := range toks {
		if r.movable(t.Successor) {
			add(sealedRef{"successor", t.Digest})
		}
	}
	return refs, nil
}

// resealValue re-seals one value under aad if it is movable. A value
// that does not open with its key is broken: it is left as it is (its
// record answers "reconnect required" when used) and reported.
func (r *Resealer) resealValue(sealed, aad []byte) (next []byte, moved, broken bool, err error) {
	if !r.movable(sealed) {
		return sealed, false, false, nil
	}
	plain, err := r.opts.Keyring.Open(sealed, aad)
	if err != nil {
		return sealed, false, true, nil
	}
	next, err = r.opts.Keyring.Seal(plain, aad)
	if err != nil {
		return nil, false, false, err
	}
	return next, true, false, nil
}

// reseal moves one record inside the store's read-modify-write and
// reports whether it wrote. A record gone meanwhile (deleted, expired) or
// already moved by a concurrent writer is simply passed over.
func (r *Resealer) reseal(ctx context.Context, ref sealedRef) (bool, error) {
	broken := false
	var err error
	switch ref.kind {
	case "connection":
		err = r.opts.Store.UpdateConnection(ctx, ref.id, func(c store.Connection) (store.Connection, error) {
			moved := false
			for _, f := range connectionFields(&c) {
				next, m, b, err := r.resealValue(*f.value, connectionAAD(c, f.name))
				if err != nil {
					return c, err
				}
				*f.value, moved, broken = next, moved || m, broken || b
			}
			if !moved {
				return c, errUnchanged
			}
			return c, nil
		})
	case "flow":
		err = r.opts.Store.UpdateFlow(ctx, ref.id, r.opts.Now(), func(f store.Flow) (store.Flow, error) {
			next, moved, b, err := r.resealValue(f.Data, flowAAD(f.ID))
			broken = b
			switch {
			case err != nil:
				return f, err
			case !moved:
				return f, errUnchanged
			}
			f.Data = next
			return f, nil
		})
	case "successor":
		err = r.opts.Store.UpdateSuccessor(ctx, ref.id, func(t store.Token) ([]byte, error) {
			next, moved, b, err := r.resealValue(t.Successor, SuccessorAAD(t.Digest))
			broken = b
			switch {
			case err != nil:
				return nil, err
			case !moved:
				return nil, errUnchanged
			}
			return next, nil
		})
	}
	if broken {
		r.skip[ref] = true
		// Only a connection's id is logged: the others are digests of
		// secrets, which stay out of logs however harmless.
		args := []any{"record", ref.kind}
		if ref.kind == "connection" {
			args = append(args, "connection", ref.id)
		}
		r.log.WarnContext(ctx, "re-seal: a sealed value does not open with its key; left as it is", args...)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errUnchanged), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		return false, nil
	}
	return false, fmt.Errorf("re-seal %s: %w", ref.kind, err)
}
