package live

import (
	"math"
	"time"

	"github.com/unfurld/unfurld/engine/upstream"
)

// Adaptive poll concurrency (issue 11): a provider's refreshes run in
// waves of as many as it takes to poll every subscription once per
// poll_interval, given what a whole wave costs (the slowest refresh
// upstream, plus the claim and the schedule write around it), no more
// than its request budget and the upstream's announced rate limit can
// feed, and never more than a maximum.
const (
	// DefaultMaxPollWorkers caps the refreshes of one provider at once;
	// the upstream client's server.max_concurrent_upstream caps them
	// across providers too.
	DefaultMaxPollWorkers = 64
	// initialPollWorkers is the wave size before a refresh has been
	// timed.
	initialPollWorkers = 4
	// sweepHeadroom plans a sweep to end at 1/sweepHeadroom of the
	// interval, leaving room for retries and pauses.
	sweepHeadroom = 1.25
	// ewmaWeight is the weight of the newest sample in the running
	// means of a refresh's latency and requests.
	ewmaWeight = 0.2
)

// pollWorkers is how many refreshes of a provider to run at once. A wave
// lasts about latency (its refreshes run at once) plus overhead (the
// claim, the schedule write and whatever else the wave does besides
// waiting for the upstream), whatever its size: enough workers that n
// subscriptions are all polled within interval (with headroom) at that
// cost per wave, but no more than rate requests a second can keep busy
// when each refresh sends reqs requests (rate 0: no limit), and within
// [1, maxWorkers]. Before any wave has been timed it starts at
// initialPollWorkers.
//
// Sizing from the latency alone undercounts when the store's round trips
// cost more than the upstream: 300,000 subscriptions on PostgreSQL with a
// fast upstream got waves of one to four, and sweeps of twice the
// interval (docs/operations.md, "PostgreSQL performance").
func pollWorkers(n int, interval, latency, overhead time.Duration, reqs, rate float64, maxWorkers int) int {
	wave := latency + overhead
	if wave <= 0 {
		return min(initialPollWorkers, maxWorkers)
	}
	need := math.Ceil(float64(n) * wave.Seconds() * sweepHeadroom / interval.Seconds())
	if rate > 0 {
		// Workers past this would only wait for the budget's tokens or
		// run into the upstream's reserve: a wave of them sends reqs
		// each, and one starts every wave.
		need = min(need, math.Ceil(rate/max(reqs, 1)*wave.Seconds()))
	}
	return int(max(1, min(need, float64(maxWorkers))))
}

// feedRate is the requests a second polling may send: the request budget's
// refill rate, and what the upstream's last rate limit leaves above the
// unfurls' reserve until its reset, whichever is lower; 0 is no limit.
func feedRate(b *budget, rl upstream.RateLimit, now time.Time) float64 {
	rate := b.perSecond
	if rl.Known && rl.Reset.After(now) {
		left := float64(rl.Remaining - rl.Limit/upstreamReserve)
		r := max(left, 0) / rl.Reset.Sub(now).Seconds()
		if rate == 0 || r < rate {
			// A zero here pauses the provider anyway (apply); one
			// worker is the floor.
			rate = max(r, 1e-9)
		}
	}
	return rate
}

// ewma folds sample into mean; the first sample is the mean.
func ewma(mean, sample float64) float64 {
	if mean == 0 {
		return sample
	}
	return mean + ewmaWeight*(sample-mean)
}
