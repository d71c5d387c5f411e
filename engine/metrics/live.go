package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collectTimeout bounds the store reads of one scrape.
const collectTimeout = 5 * time.Second

// LiveSource is what the live-update gauges read at each scrape; the
// counts already live in the poller, the budget and the store, so they
// are read where they are rather than kept twice. Every field is
// optional.
type LiveSource struct {
	// Subscriptions returns the scheduled subscriptions per polled
	// provider.
	Subscriptions func() map[string]int
	// Budget returns, per polled provider with a request budget, how
	// many requests it may still send now.
	Budget func() map[string]float64
	// RateLimit returns, per provider whose upstream announced a rate
	// limit, the requests it said were left.
	RateLimit func() map[string]float64
	// Outbox returns the pending PATCHes per provider and, per provider,
	// when the oldest of them was enqueued.
	Outbox func(ctx context.Context) (depth map[string]int, oldest map[string]time.Time, err error)
	// Now is the clock of the ages; nil means time.Now.
	Now func() time.Time
}

// liveCollector turns a LiveSource into gauges at scrape time.
type liveCollector struct {
	subs, budget, rateLimit, depth, oldest *prometheus.Desc

	mu  sync.Mutex
	src LiveSource
}

func newLiveCollector() *liveCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "live", name), help, []string{"provider"}, nil)
	}
	return &liveCollector{
		subs:      desc("subscriptions", "Subscriptions the poller keeps current, by provider."),
		budget:    desc("poll_budget_remaining", "Polling requests a provider may still send now under its max_requests_per_hour."),
		rateLimit: desc("upstream_rate_limit_remaining", "Requests left in the upstream's rate limit, as it last announced, by provider."),
		depth:     desc("outbox_items", "Preview updates waiting to be sent to Notion, by provider."),
		oldest:    desc("outbox_oldest_age_seconds", "Age of the oldest preview update waiting to be sent to Notion, by provider."),
	}
}

func (c *liveCollector) set(src LiveSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src = src
}

// Describe implements prometheus.Collector.
func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.subs
	ch <- c.budget
	ch <- c.rateLimit
	ch <- c.depth
	ch <- c.oldest
}

// Collect implements prometheus.Collector.
func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	gauges := func(d *prometheus.Desc, m map[string]float64) {
		for p, v := range m {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, p)
		}
	}
	if src.Subscriptions != nil {
		for p, n := range src.Subscriptions() {
			ch <- prometheus.MustNewConstMetric(c.subs, prometheus.GaugeValue, float64(n), p)
		}
	}
	if src.Budget != nil {
		gauges(c.budget, src.Budget())
	}
	if src.RateLimit != nil {
		gauges(c.rateLimit, src.RateLimit())
	}
	if src.Outbox == nil {
		return
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	depth, oldest, err := src.Outbox(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	t := now()
	for p, n := range depth {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), p)
		age := 0.0
		if at, ok := oldest[p]; ok && t.After(at) {
			age = t.Sub(at).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, p)
	}
}
