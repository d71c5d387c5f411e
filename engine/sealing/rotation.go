package sealing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// Key rotation (security.md TH-42, F14). A new key put first in the
// keyring seals every new record at once; the Resealer then moves the
// records still sealed with older keys to it, and CountSealed shows, per
// key id, what each key still seals, so an operator can tell when an old
// key may go. CheckRemovedKeys refuses a keyring that lacks a key some
// record still needs, and DropRemovedKeys is the deliberate way out when
// such a key is lost for good.

// KeyUsage counts the stored records one key id seals.
type KeyUsage struct {
	// ID is the key id written in the sealed values.
	ID string `json:"id"`
	// Primary is true for the key that seals new records.
	Primary bool `json:"primary"`
	// InKeyring is false for an id that stored records name but the
	// configured keyring lacks: those records cannot be opened.
	InKeyring bool `json:"in_keyring"`
	// Connections counts connections with a field sealed under the key;
	// ReconnectRequired those of them already marked reconnect_required,
	// which need no key any more (only a new connection revives them).
	Connections       int `json:"connections"`
	ReconnectRequired int `json:"reconnect_required"`
	// Flows counts unexpired pending flows; an expired one can never be
	// opened again and is swept.
	Flows int `json:"flows"`
	// Successors counts spent refresh tokens whose sealed successor pair
	// answers a retry (TH-24).
	Successors int `json:"successors"`
}

// Needed is the number of records that still need the key: every count
// but the connections already marked reconnect_required.
func (u KeyUsage) Needed() int {
	return u.Connections - u.ReconnectRequired + u.Flows + u.Successors
}

// SealedKeyID returns the key id written in a sealed value, without
// opening it; false if the header is unreadable.
func SealedKeyID(sealed []byte) (string, bool) {
	id, _, err := parseHeader(sealed)
	return id, err == nil
}

// holds reports whether the keyring has a key with that id.
func (k *Keyring) holds(id string) bool {
	_, ok := k.keys[id]
	return ok
}

// connectionFields lists the sealed fields of a connection with their
// names, which are part of their aad.
func connectionFields(c *store.Connection) []struct {
	name  string
	value *[]byte
} {
	return []struct {
		name  string
		value *[]byte
	}{
		{FieldNotionToken, &c.NotionToken},
		{FieldUpstreamCredential, &c.UpstreamCredential},
	}
}

// CountSealed counts, per key id, the records it seals: connections,
// unexpired pending flows and refresh successors. Every key of the
// keyring is listed, primary first then in keyring order, followed by the
// ids records name that the keyring lacks, sorted. Subscriptions hold
// nothing sealed and are not read, so the cost is that of reading the
// connections, the flows and the tokens.
func CountSealed(ctx context.Context, st store.Store, k *Keyring, now time.Time) ([]KeyUsage, error) {
	counts := map[string]*KeyUsage{}
	at := func(id string) *KeyUsage {
		u, ok := counts[id]
		if !ok {
			u = &KeyUsage{ID: id, Primary: id == k.PrimaryID(), InKeyring: k.holds(id)}
			counts[id] = u
		}
		return u
	}
	for _, id := range k.ids {
		at(id)
	}
	conns, err := st.ListConnections(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("count sealed connections: %w", err)
	}
	for _, c := range conns {
		seen := map[string]bool{}
		for _, f := range connectionFields(&c) {
			if id, ok := SealedKeyID(*f.value); ok && !seen[id] {
				seen[id] = true
				u := at(id)
				u.Connections++
				if c.Status == store.StatusReconnect {
					u.ReconnectRequired++
				}
			}
		}
	}
	flows, err := st.ListFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("count sealed flows: %w", err)
	}
	for _, f := range flows {
		if id, ok := SealedKeyID(f.Data); ok && !flowExpired(f, now) {
			at(id).Flows++
		}
	}
	toks, err := st.ListSuccessors(ctx)
	if err != nil {
		return nil, fmt.Errorf("count sealed successors: %w", err)
	}
	for _, t := range toks {
		if id, ok := SealedKeyID(t.Successor); ok {
			at(id).Successors++
		}
	}
	out := make([]KeyUsage, 0, len(counts))
	for _, id := range k.ids {
		out = append(out, *counts[id])
		delete(counts, id)
	}
	rest := make([]string, 0, len(counts))
	for id := range counts {
		rest = append(rest, id)
	}
	slices.Sort(rest)
	for _, id := range rest {
		out = append(out, *counts[id])
	}
	return out, nil
}

// flowExpired mirrors the stores' rule: a zero ExpiresAt never expires.
func flowExpired(f store.Flow, now time.Time) bool {
	return !f.ExpiresAt.IsZero() && !now.Before(f.ExpiresAt)
}

// RemovedKeyError means the keyring lacks a key that stored records still
// need. Starting anyway would turn those users' connections into
// "reconnect required" without anyone having decided it.
type RemovedKeyError struct {
	Usage KeyUsage
}

func (e *RemovedKeyError) Error() string {
	u := e.Usage
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(u.Connections-u.ReconnectRequired, "connection", "connections")
	add(u.Flows, "pending flow", "pending flows")
	add(u.Successors, "refresh successor", "refresh successors")
	noun := "records"
	if u.Needed() == 1 {
		noun = "record"
	}
	return fmt.Sprintf("key %q was removed but still seals %d stored %s (%s); put it back until `unfurld status` shows 0 for it, or start once with --drop-key %s to accept that those users must reconnect",
		u.ID, u.Needed(), noun, strings.Join(parts, ", "), u.ID)
}

// CheckRemovedKeys returns a *RemovedKeyError, joined for several keys,
// for every key id that records still need but the keyring lacks.
func CheckRemovedKeys(ctx context.Context, st store.Store, k *Keyring, now time.Time) error {
	usage, err := CountSealed(ctx, st, k, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range usage {
		if !u.InKeyring && u.Needed() > 0 {
			errs = append(errs, &RemovedKeyError{Usage: u})
		}
	}
	return errors.Join(errs...)
}

// DropRemovedKeys gives up on the records sealed under ids, keys that are
// gone for good: their connections are marked reconnect_required (the
// user connects again from Notion), their pending flows are deleted (the
// user starts again) and their refresh successors are cleared (a retry
// of that refresh is refused, as it would be anyway). Nothing is deleted
// from a connection, so putting the key back later loses nothing but the
// status. An id the keyring still holds is refused: it is not removed.
// Each record changes in its own read-modify-write, which checks again
// that it is still sealed under a dropped id. It returns what it changed.
func DropRemovedKeys(ctx context.Context, st store.Store, k *Keyring, ids []string, now time.Time) (KeyUsage, error) {
	var done KeyUsage
	drop := map[string]bool{}
	for _, id := range ids {
		if k.holds(id) {
			return done, fmt.Errorf("drop key %q: it is still in the keyring", id)
		}
		drop[id] = true
	}
	dropped := func(b []byte) bool {
		id, ok := SealedKeyID(b)
		return ok && drop[id]
	}
	conns, err := st.ListConnections(ctx, "")
	if err != nil {
		return done, fmt.Errorf("drop keys: %w", err)
	}
	for _, c := range conns {
		if c.Status == store.StatusReconnect || !(dropped(c.NotionToken) || dropped(c.UpstreamCredential)) {
			continue
		}
		err := st.UpdateConnection(ctx, c.ID, func(c store.Connection) (store.Connection, error) {
			if c.Status == store.StatusReconnect || !(dropped(c.NotionToken) || dropped(c.UpstreamCredential)) {
				return c, errUnchanged
			}
			c.Status, c.UpdatedAt = store.StatusReconnect, now.UTC()
			c.Reconnect = store.ConnectionEvent{At: now.UTC(), Call: "key rotation", Detail: "sealed with a key the operator dropped"}
			return c, nil
		})
		switch {
		case err == nil:
			done.Connections++
		case !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound):
			return done, fmt.Errorf("drop keys: connection %s: %w", c.ID, err)
		}
	}
	flows, err := st.ListFlows(ctx)
	if err != nil {
		return done, fmt.Errorf("drop keys: %w", err)
	}
	for _, f := range flows {
		if !dropped(f.Data) {
			continue
		}
		// A flow's data is written once per step and never re-sealed
		// under a dropped key, so no read-modify-write is needed here.
		ok, err := st.DeleteFlow(ctx, f.ID)
		if err != nil {
			return done, fmt.Errorf("drop keys: flow: %w", err)
		}
		if ok && !flowExpired(f, now) {
			done.Flows++
		}
	}
	toks, err := st.ListSuccessors(ctx)
	if err != nil {
		return done, fmt.Errorf("drop keys: %w", err)
	}
	for _, t := range toks {
		if !dropped(t.Successor) {
			continue
		}
		err := st.UpdateSuccessor(ctx, t.Digest, func(t store.Token) ([]byte, error) {
			if !dropped(t.Successor) {
				return nil, errUnchanged
			}
			return nil, nil
		})
		switch {
		case err == nil:
			done.Successors++
		case !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound):
			return done, fmt.Errorf("drop keys: refresh successor: %w", err)
		}
	}
	return done, nil
}

// errUnchanged aborts a read-modify-write that found nothing to do, so
// the store writes nothing.
var errUnchanged = errors.New("unchanged")
