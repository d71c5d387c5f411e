package live

import (
	"math"
	"time"
)

// pacer spaces one connection's PATCHes (protocol 7.4: about 3 requests a
// second on average, bursts allowed; security.md TH-52, F10). It is a
// token bucket in GCRA form: tat is the theoretical arrival time of the
// next request, and a request may go once now >= tat - tolerance, where
// tolerance = (burst-1) * interval lets a short burst through. Unlike a
// plain "allow now?" bucket it hands out future slots, so a backlog is
// spread over time in one pass and does not block other connections'
// items queued behind it.
type pacer struct {
	tat time.Time
	// hold is set from a 429/529 Retry-After: nothing of the connection
	// goes before it (protocol 7.4).
	hold time.Time
}

// reserve takes the next slot at or after now and returns it.
func (p *pacer) reserve(now time.Time, interval, tolerance time.Duration) time.Time {
	slot := p.tat.Add(-tolerance)
	if slot.Before(now) {
		slot = now
	}
	if p.tat.Before(slot) {
		p.tat = slot
	}
	p.tat = p.tat.Add(interval)
	return slot
}

// holdUntil stops the connection until t, and lets only one request go at
// t with the rest spaced by the interval: a burst right after a 429 would
// likely meet another.
func (p *pacer) holdUntil(t time.Time, tolerance time.Duration) {
	if p.hold.Before(t) {
		p.hold = t
	}
	if next := t.Add(tolerance); p.tat.Before(next) {
		p.tat = next
	}
}

// idle reports whether the pacer is back to its initial state at now, so
// it can be forgotten.
func (p *pacer) idle(now time.Time, tolerance time.Duration) bool {
	return !now.Before(p.hold) && !now.Before(p.tat.Add(-tolerance))
}

// backoff is the wait before attempt n+1 after n failures (n >= 1): base *
// 2^(n-1), capped at ceiling, then spread by jitter: the result lies in
// [d*(1-jitter), d*(1+jitter)) for r in [0, 1). With the defaults (1 s,
// jitter 0.2) the waits are about 1 s, 2 s, 4 s (security.md F9), and they
// grow strictly while below the cap, since 1.2d < 0.8*2d.
func backoff(n int, base, ceiling time.Duration, jitter, r float64) time.Duration {
	d := float64(base) * math.Pow(2, float64(n-1))
	if d > float64(ceiling) || math.IsInf(d, 0) {
		d = float64(ceiling)
	}
	return time.Duration(d * (1 - jitter + 2*jitter*r))
}
