// Package metrics owns unfurld's Prometheus instrumentation: one
// registry per process (no package-level state), the Go runtime and
// process collectors, and the counters and histograms the other
// packages feed through the narrow observer interfaces they declare
// themselves (upstream.Observer, provider.Observer, server.Metrics,
// store.Observer, live and connect hooks). Only this package and the
// wiring above it import client_golang, so the engine stays free of it.
//
// Labels are bounded by the configuration: provider and pattern names,
// fixed outcome, step and result words. A URI, a connection id, a token
// or a user never becomes a label.
//
// The hot path stays allocation-free: each label set is resolved with
// WithLabelValues once, the first time it is seen, and kept in a
// copy-on-write map read without locks (curried). Providers added by a
// reload get their series the same way.
package metrics
