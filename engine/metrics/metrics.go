package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric name (Prometheus naming conventions).
const namespace = "unfurld"

// Cache lookups of an unfurl, as passed to Unfurl.
const (
	// CacheHit: the answer came from the result cache.
	CacheHit = "hit"
	// CacheMiss: the result cache had no answer; the provider ran.
	CacheMiss = "miss"
)

// Metrics is the process's instrumentation: a registry with every
// unfurld series, the Go runtime and the process collectors. Its
// methods implement the observer interfaces of the instrumented
// packages and are safe for concurrent use. A nil *Metrics is not
// valid; callers that want none pass no observer.
type Metrics struct {
	reg *prometheus.Registry

	unfurls    *curried[unfurlKey, unfurlSeries]
	collapsed  *curried[string, prometheus.Counter]
	exchanges  *curried[exchangeKey, exchangeSeries]
	refused    *curried[string, prometheus.Counter]
	oauth      *curried[[3]string, prometheus.Counter]
	tokens     *curried[[3]string, prometheus.Counter]
	webhooks   *curried[[2]string, prometheus.Counter]
	refreshes  *curried[[3]string, prometheus.Counter]
	patches    *curried[[2]string, prometheus.Counter]
	storeOps   *curried[string, storeSeries]
	roundTrips prometheus.Counter
	scrapeLive *liveCollector
	// canarySamples and canaryRun hold the last scheduled canary run per
	// provider (engine/canary): gauges, since a run replaces the last.
	canarySamples *prometheus.GaugeVec
	canaryRun     *prometheus.GaugeVec
}

type unfurlKey struct{ provider, pattern, outcome, cache string }

// unfurlSeries are the children one unfurl touches, resolved together
// so that an unfurl costs one map lookup.
type unfurlSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
	cache    prometheus.Counter // nil when the cache was not consulted
}

type exchangeKey struct {
	provider string
	class    string
}

type exchangeSeries struct {
	responses prometheus.Counter
	duration  prometheus.Observer
}

type storeSeries struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

// New builds the registry and every collector.
func New() *Metrics {
	// Buckets, in seconds. A warm unfurl takes microseconds and a cold
	// one an upstream round trip, so the unfurl buckets start lower than
	// the upstream ones; store operations range from a cached read to an
	// fsync.
	unfurlBuckets := []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	upstreamBuckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	storeBuckets := []float64{.00005, .0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	counter := func(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	histogram := func(subsystem, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}, labels)
		reg.MustRegister(v)
		return v
	}

	unfurlRequests := counter("unfurl", "requests_total",
		"Unfurl callbacks answered, by provider, pattern (none when no pattern ran) and outcome.", "provider", "pattern", "outcome")
	unfurlDuration := histogram("unfurl", "duration_seconds",
		"Time to answer an unfurl callback, by provider.", unfurlBuckets, "provider")
	cacheHits := counter("unfurl", "cache_hits_total",
		"Unfurls answered from the result cache, by provider.", "provider")
	cacheMisses := counter("unfurl", "cache_misses_total",
		"Unfurls the result cache could not answer, by provider.", "provider")
	collapsed := counter("unfurl", "collapsed_total",
		"Unfurls that waited for an identical one in flight instead of running their own, by provider.", "provider")
	upResponses := counter("upstream", "responses_total",
		"Upstream HTTP exchanges by provider and status class (2xx, 3xx, 4xx, 5xx; error when no answer came).", "provider", "class")
	upDuration := histogram("upstream", "request_duration_seconds",
		"Upstream HTTP exchange time, by provider; cache hits and collapsed callers excluded.", upstreamBuckets, "provider")
	refused := counter("upstream", "refused_total",
		"Outbound calls unfurld refused to make (host off the allowlist, private address, redirect leaving the allowlist), by provider.", "provider")
	oauth := counter("oauth", "events_total",
		"Connection-flow events by provider, step and result.", "provider", "step", "result")
	tokens := counter("oauth", "token_requests_total",
		"Token URL requests by provider, grant type and result (granted or refused).", "provider", "grant_type", "result")
	webhooks := counter("live", "webhooks_total",
		"Upstream webhook deliveries by provider and result.", "provider", "result")
	refreshes := counter("live", "refreshes_total",
		"Subscription refreshes by provider, trigger (poll, webhook) and outcome (changed, unchanged, not_modified, gone, error, skipped).", "provider", "trigger", "outcome")
	patches := counter("live", "patches_total",
		"PATCHes of previews to Notion by provider and result (delivered, retry, failed).", "provider", "result")
	storeDuration := histogram("store", "operation_duration_seconds",
		"Store operation time, by operation.", storeBuckets, "operation")
	storeErrors := counter("store", "errors_total",
		"Store operations that failed (not found excluded), by operation.", "operation")

	roundTrips := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "store", Name: "round_trips_total",
		Help: "Round trips to the PostgreSQL database (statements, transaction begins and commits, batches, preparations); stays 0 on bbolt."})
	reg.MustRegister(roundTrips)

	m := &Metrics{reg: reg, roundTrips: roundTrips}
	m.unfurls = newCurried(func(k unfurlKey) unfurlSeries {
		s := unfurlSeries{
			requests: unfurlRequests.WithLabelValues(k.provider, k.pattern, k.outcome),
			duration: unfurlDuration.WithLabelValues(k.provider),
		}
		switch k.cache {
		case CacheHit:
			s.cache = cacheHits.WithLabelValues(k.provider)
		case CacheMiss:
			s.cache = cacheMisses.WithLabelValues(k.provider)
		}
		return s
	})
	m.collapsed = newCurried(func(p string) prometheus.Counter { return collapsed.WithLabelValues(p) })
	m.exchanges = newCurried(func(k exchangeKey) exchangeSeries {
		return exchangeSeries{responses: upResponses.WithLabelValues(k.provider, k.class), duration: upDuration.WithLabelValues(k.provider)}
	})
	m.refused = newCurried(func(p string) prometheus.Counter { return refused.WithLabelValues(p) })
	m.oauth = newCurried(func(k [3]string) prometheus.Counter { return oauth.WithLabelValues(k[:]...) })
	m.tokens = newCurried(func(k [3]string) prometheus.Counter { return tokens.WithLabelValues(k[:]...) })
	m.webhooks = newCurried(func(k [2]string) prometheus.Counter { return webhooks.WithLabelValues(k[:]...) })
	m.refreshes = newCurried(func(k [3]string) prometheus.Counter { return refreshes.WithLabelValues(k[:]...) })
	m.patches = newCurried(func(k [2]string) prometheus.Counter { return patches.WithLabelValues(k[:]...) })
	m.storeOps = newCurried(func(op string) storeSeries {
		return storeSeries{duration: storeDuration.WithLabelValues(op), errors: storeErrors.WithLabelValues(op)}
	})
	m.scrapeLive = newLiveCollector()
	reg.MustRegister(m.scrapeLive)
	m.canarySamples = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "canary", Name: "samples",
		Help: "Sample URLs of the last scheduled canary run, by provider and verdict (ok, changed, failed)."}, []string{"provider", "verdict"})
	m.canaryRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "canary", Name: "last_run_timestamp_seconds",
		Help: "When the last scheduled canary run of a provider finished, as a Unix time."}, []string{"provider"})
	reg.MustRegister(m.canarySamples, m.canaryRun)
	return m
}

// Canary records one provider's part of a scheduled canary run: how
// many of its samples still map as the baseline has them (ok), answer
// differently (changed) or got no usable answer (failed). A run is rare
// (hours apart), so the label lookups need no currying.
func (m *Metrics) Canary(provider string, ok, changed, failed int, at time.Time) {
	m.canarySamples.WithLabelValues(provider, "ok").Set(float64(ok))
	m.canarySamples.WithLabelValues(provider, "changed").Set(float64(changed))
	m.canarySamples.WithLabelValues(provider, "failed").Set(float64(failed))
	m.canaryRun.WithLabelValues(provider).Set(float64(at.Unix()))
}

// Registry returns the registry, for tests and for linting.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. A series
// that cannot be read (the store failing under the outbox gauges) is
// left out and the rest still served: the store errors counter and the
// log say why, and a failed scrape would hide every other signal.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Unfurl counts one answered unfurl callback: outcome is one of the
// server's outcome words, pattern "none" when no pattern ran, cache
// CacheHit, CacheMiss or "" when the cache was not consulted (refused
// requests).
func (m *Metrics) Unfurl(provider, pattern, outcome, cache string, d time.Duration) {
	s := m.unfurls.get(unfurlKey{provider: provider, pattern: pattern, outcome: outcome, cache: cache})
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
	if s.cache != nil {
		s.cache.Inc()
	}
}

// Collapsed counts an unfurl that joined an identical one in flight.
func (m *Metrics) Collapsed(provider string) { m.collapsed.get(provider).Inc() }

// Exchange records one upstream HTTP exchange; status 0 is no answer.
func (m *Metrics) Exchange(provider string, status int, d time.Duration) {
	s := m.exchanges.get(exchangeKey{provider: provider, class: statusClass(status)})
	s.responses.Inc()
	s.duration.Observe(d.Seconds())
}

// Refused counts an outbound call unfurld refused to make.
func (m *Metrics) Refused(provider string) { m.refused.get(provider).Inc() }

// OAuth counts a connection-flow event.
func (m *Metrics) OAuth(provider, step, result string) {
	m.oauth.get([3]string{provider, step, result}).Inc()
}

// Token counts a token URL request by grant type and result.
func (m *Metrics) Token(provider, grantType, result string) {
	m.tokens.get([3]string{provider, grantType, result}).Inc()
}

// Webhook counts an upstream webhook delivery by result.
func (m *Metrics) Webhook(provider, result string) {
	m.webhooks.get([2]string{provider, result}).Inc()
}

// Refresh counts a subscription refresh.
func (m *Metrics) Refresh(provider, trigger, outcome string) {
	m.refreshes.get([3]string{provider, trigger, outcome}).Inc()
}

// Patch counts a PATCH attempt to Notion by result.
func (m *Metrics) Patch(provider, result string) {
	m.patches.get([2]string{provider, result}).Inc()
}

// StoreOp records one store operation; failed marks an error other
// than "not found".
func (m *Metrics) StoreOp(op string, d time.Duration, failed bool) {
	s := m.storeOps.get(op)
	s.duration.Observe(d.Seconds())
	if failed {
		s.errors.Inc()
	}
}

// StoreRoundTrip counts one round trip to the database server
// (engine/store/postgres Options.RoundTrip).
func (m *Metrics) StoreRoundTrip() { m.roundTrips.Inc() }

// SetLive installs what the live-update gauges read at scrape time.
// Until it is called they report nothing.
func (m *Metrics) SetLive(src LiveSource) { m.scrapeLive.set(src) }

// statusClass names the class of an HTTP status; "error" for no
// answer. Constant strings, so that an exchange allocates nothing.
func statusClass(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "error"
}
