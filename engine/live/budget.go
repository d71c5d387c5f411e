package live

import (
	"math"
	"time"
)

// epsilon absorbs float rounding in the token count.
const epsilon = 1e-6

// budget is a provider's polling allowance: a token bucket refilled at
// perHour requests an hour, holding at most a minute's worth, so a
// restart or a quiet spell cannot turn into a burst of more than that
// (issue 4 item 2: polling within a per-provider request budget).
// Tokens may go negative: a refresh that sent more requests than the one
// it was admitted with pays the rest afterwards, and the next polls wait
// for it.
type budget struct {
	perSecond float64
	burst     float64
	tokens    float64
	last      time.Time
}

// newBudget is a full bucket of perHour requests an hour; perHour <= 0
// is no limit.
func newBudget(perHour int) *budget {
	if perHour <= 0 {
		return &budget{}
	}
	burst := max(1, float64(perHour)/60)
	return &budget{perSecond: float64(perHour) / 3600, burst: burst, tokens: burst}
}

// refill adds what accrued since the last call.
func (b *budget) refill(now time.Time) {
	if b.perSecond == 0 {
		return
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// take admits one request at now, if a whole token is there.
func (b *budget) take(now time.Time) bool {
	if b.perSecond == 0 {
		return true
	}
	b.refill(now)
	if b.tokens < 1-epsilon {
		return false
	}
	b.tokens--
	return true
}

// charge settles a refresh admitted with one token that sent n requests:
// it pays n-1 more, or gets its token back when it sent none.
func (b *budget) charge(n int) {
	if b.perSecond == 0 {
		return
	}
	b.tokens = min(b.burst, b.tokens-float64(n-1))
}

// readyAt is when take will next succeed, at or after now.
func (b *budget) readyAt(now time.Time) time.Time {
	if b.perSecond == 0 {
		return now
	}
	b.refill(now)
	if b.tokens >= 1-epsilon {
		return now
	}
	// Whole milliseconds, rounded up but for float noise, so that at
	// readyAt the sum has reached a token (within epsilon).
	ms := math.Ceil((1-b.tokens)/b.perSecond*1e3 - 1e-6)
	return now.Add(time.Duration(ms) * time.Millisecond)
}
