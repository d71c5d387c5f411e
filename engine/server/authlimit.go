package server

import (
	"net/netip"
	"sync"
	"time"
)

// failLimiter counts events per key (a caller address, see ipKey) in
// fixed windows, and blocks a key for the rest of its window once it
// reaches limit events (TH-20, TH-12). On the token URL only failures
// count, so Notion's own well-formed calls never use up the budget.
//
// The table is bounded by maxKeys. When it is full of live windows a new
// key is not tracked (fail open): refusing every new key would let anyone
// with many addresses (an IPv6 /48 is cheap) lock Notion out. Guessing
// stays hopeless anyway against 256-bit secrets.
type failLimiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxKeys int
	m       map[string]failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func newFailLimiter(limit int, window time.Duration, maxKeys int) *failLimiter {
	return &failLimiter{limit: limit, window: window, maxKeys: maxKeys, m: map[string]failWindow{}}
}

// blocked returns how long key must wait, or 0 when it may try.
func (l *failLimiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	if !ok || w.n < l.limit || !l.live(w, now) {
		return 0
	}
	return w.start.Add(l.window).Sub(now)
}

// fail records one failure of key.
func (l *failLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	if !ok || !l.live(w, now) {
		if !ok && len(l.m) >= l.maxKeys {
			l.prune(now)
			if len(l.m) >= l.maxKeys {
				return // fail open, see the type comment
			}
		}
		w = failWindow{start: now}
	}
	w.n++
	l.m[key] = w
}

// live reports whether w's window is current. A clock that stepped back
// before the window's start opens a new window rather than blocking for
// longer than one window.
func (l *failLimiter) live(w failWindow, now time.Time) bool {
	return !now.Before(w.start) && now.Sub(w.start) < l.window
}

// prune drops finished windows. The caller holds the lock.
func (l *failLimiter) prune(now time.Time) {
	for k, w := range l.m {
		if !l.live(w, now) {
			delete(l.m, k)
		}
	}
}

// ipKey is the limiter key of a client address: the address itself for
// IPv4, its /64 for IPv6, since one host usually holds a whole /64.
// Unparsable input is keyed as-is (the direct peer always parses).
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "ip:" + ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + a.String()
}
