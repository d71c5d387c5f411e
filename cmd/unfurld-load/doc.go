// Command unfurld-load measures the real unfurld binary against the
// performance targets of issue 2 and prints a report of ratios.
//
//	go run ./cmd/unfurld-load                 build unfurld, run every scenario, print the report
//	go run ./cmd/unfurld-load --bin ./unfurld --duration 10s --concurrency 64
//
// # Method
//
// Absolute throughput and latency depend on the machine and on whatever
// else it is doing, so every target is a ratio (or a difference) between
// two measurements taken in the same run, on the same machine, with the
// same load generator, the same concurrency and the same duration:
//
//   - a. warm cache, one URI: unfurld's throughput over that of a bare
//     echo server returning the same bytes (target >= 0.80). The bare
//     server is a separate process too (this binary's "bare" subcommand),
//     so both pay the same process, socket and HTTP parsing costs.
//   - b. upstream with 50 ms latency, no cache, a distinct URI per
//     request: unfurld's p50 and p99 latency minus the fake upstream's own,
//     measured by hitting the fake directly (targets < 100 us and < 1 ms).
//     Workers start spread over one upstream latency, so that they do not
//     arrive in bursts of C at once.
//   - c. instant upstream, no cache, distinct URIs: unfurld's throughput
//     over the fake upstream's own (target >= 0.35).
//   - d. 64 concurrent unfurls of one fresh URI with the cache on cause
//     exactly one upstream call (read from the fake's counter).
//   - e. as c, against the same provider written by hand in Go (this
//     binary's "handwritten" subcommand: bearer check, pattern match, one
//     upstream GET, gjson, encoding/json; no subscription, cache, guard
//     or collapsing): unfurld's p99 must be no worse (issue 11). The note
//     gives the CPU per request of the two.
//   - f. as a, with unfurld on PostgreSQL against unfurld on bbolt, both
//     up at once: throughput ratio PostgreSQL / bbolt (issue 11: at least
//     0.9; the hot path reads no database on a warm hit).
//   - g. as c, PostgreSQL against bbolt: throughput ratio (issue 11: at
//     least 0.7).
//
// f and g start a throwaway PostgreSQL cluster (engine/store/postgres/
// pgcluster: Debian's postgresql package, a Unix socket in a temporary
// directory, fsync and synchronous commit on as on a real server, since
// bbolt syncs its commits too); --driver postgres runs a to e on it as
// well. Their rows add the database round trips per unfurl, read from
// the PostgreSQL server's own /metrics (unfurld_store_round_trips_total
// over unfurld_unfurl_requests_total, warm-up and background work
// included), and a note adds the CPU of the PostgreSQL processes to
// unfurld's.
//
// With a run of a and c (or e), a row divides unfurld's CPU per cold
// request by the bare echo server's per request in a (issue 11: at most
// 6).
//
// Within a scenario the two sides alternate for --rounds rounds, after an
// unmeasured warm-up of each, so that drift (CPU frequency, other load)
// hits both sides alike. The detail table adds the CPU time the server
// process used per request (Linux, from /proc), which locates a gap
// between unfurld and its baseline. Each worker keeps one keep-alive
// connection busy and records every request's duration into a slice
// allocated up front; the slices are merged and sorted for the
// percentiles.
//
// Everything runs on 127.0.0.1: the fake upstream lives in this process,
// unfurld and the bare server are child processes on free loopback ports,
// with their data in a temporary directory removed at exit. Every phase is
// bounded in time (--duration) and in requests (--max-requests), and the
// children are stopped on exit and on Ctrl-C. The exit status is non-zero
// only when something failed (a build, a start, a failed request); a
// missed target is reported as FAIL in the table, not as an exit status.
//
// The load generator shares the machine with the servers it measures, so
// on a small machine the ratios understate what a separate client would
// see; they remain comparable between runs and between commits.
package main
