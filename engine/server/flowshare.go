package server

import (
	"sync"
	"time"
)

// flowShare bounds the pending connection flows one caller address (an
// ipKey: IPv4 /32, IPv6 /64) may hold at once, so that one network cannot
// fill the store's global cap on live flows and turn every other user
// away with a 503 for a flow lifetime (TH-12).
//
// It lives in memory in the server rather than in the store: unfurld is
// one process, so the server sees every flow start; keeping it here keeps
// client addresses out of the database (nothing to erase, nothing to
// leak), and the store's CreateFlow cap stays the durable bound. After a
// restart the shares start empty, which at worst lets an address hold
// one more share until its old flows expire.
//
// A flow counts against its address until its lifetime ends, even if it
// finishes sooner: the server does not see flows finish. With a share of
// 1 % of the cap (100 by default) a person would have to start a hundred
// sign-ins within one flow lifetime to notice.
type flowShare struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	// maxEntries bounds memory; see take.
	maxEntries int
	entries    int
	// m holds the expiry of each admitted flow per key, oldest first.
	m map[string][]time.Time
}

// Shares of the pending-flow cap.
const (
	// flowShareDivisor: one address may hold 1/flowShareDivisor of the
	// cap...
	flowShareDivisor = 100
	// flowShareMin: ...but at least this many, so a small cap still lets
	// a household or an office behind one address sign in.
	flowShareMin = 10
	// flowShareEntries bounds the table at this many times the cap.
	flowShareEntries = 4
)

func newFlowShare(maxFlows int, ttl time.Duration) *flowShare {
	return &flowShare{
		max:        max(flowShareMin, maxFlows/flowShareDivisor),
		ttl:        ttl,
		maxEntries: flowShareEntries * max(maxFlows, flowShareMin),
		m:          map[string][]time.Time{},
	}
}

// take admits one more flow for key and returns 0, or returns how long
// until the oldest of key's flows expires when key holds its whole share.
//
// When the table is full of live entries (many addresses each starting
// flows and cancelling them at once), a new address is not tracked: it is
// admitted (fail open), as failLimiter does, because refusing every new
// address would lock everyone out. The store's cap still bounds what is
// stored.
func (f *flowShare) take(key string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.live(key, now)
	if len(live) >= f.max {
		return live[0].Sub(now)
	}
	if f.entries >= f.maxEntries {
		f.prune(now)
		live = f.m[key]
		if f.entries >= f.maxEntries {
			return 0 // fail open, see above
		}
	}
	f.m[key] = append(live, now.Add(f.ttl))
	f.entries++
	return 0
}

// giveBack returns key's newest flow, for a start that stored nothing
// (a refused request, a full store).
func (f *flowShare) giveBack(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[key]
	if len(l) == 0 {
		return
	}
	f.entries--
	if len(l) == 1 {
		delete(f.m, key)
		return
	}
	f.m[key] = l[:len(l)-1]
}

// live drops key's finished entries and returns the rest. An entry more
// than one lifetime ahead means the clock stepped back: it is dropped
// rather than held longer than a lifetime. The caller holds the lock.
func (f *flowShare) live(key string, now time.Time) []time.Time {
	l := f.m[key]
	kept := l[:0]
	for _, exp := range l {
		if exp.After(now) && exp.Sub(now) <= f.ttl {
			kept = append(kept, exp)
		}
	}
	f.entries -= len(l) - len(kept)
	if len(kept) == 0 {
		delete(f.m, key)
		return nil
	}
	f.m[key] = kept
	return kept
}

// prune drops every finished entry. The caller holds the lock.
func (f *flowShare) prune(now time.Time) {
	for k := range f.m {
		f.live(k, now)
	}
}
