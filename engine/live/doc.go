// Package live keeps Link Previews current in Notion (issue 4 items 3 and
// 4): Push queues a preview's new state when it differs from what Notion
// was last sent, and the Deliverer drains that durable queue (the store's
// Outbox) with PATCH /v1/external/object (protocol 7).
//
// Delivery follows security.md TH-52: one pending state per (provider,
// connection, uri), so only the latest is sent; per-connection pacing at
// about 3 requests a second (protocol 7.4); Retry-After honoured on 429
// and 529; exponential backoff with jitter on 5xx and network errors;
// bounded attempts and total age; a stop on 401/403 that flags the
// connection; and no PATCH for a subscription that no longer exists.
// With a store several replicas share (issue 11), items are claimed with
// a lease and the pacing state lives in the store, so that no PATCH goes
// twice and the pace holds across the replicas together (dispatch.go).
//
// Change detection (issue 4 item 2) feeds Push. The Refresher fetches a
// subscribed link again with its connection's credential, conditionally
// (If-None-Match, If-Modified-Since), and pushes new attributes, or the
// error operation when the object is gone or forbidden upstream; it
// records each refresh on the subscription in batched writes, skipping
// one that tells the stored story again. The Poller runs it for every
// subscription once per provider poll_interval: it claims due
// subscriptions from the store's schedule (store.Schedule) in pages under
// a lease and writes their next poll times back once per wave, so its
// memory follows the page, not the subscription count (issue 11); first
// polls are spread with jitter; waves are sized to finish a sweep within
// the interval at the measured latency, within max_requests_per_hour and
// the upstream's rate limit; a provider pauses on Retry-After, a spent
// rate limit, and 429s and 5xx (exponential backoff). Verified webhooks
// reach it through RefreshURIs, which marks the subscriptions pending in
// a shared commit; the Refresher claims the marks from the store's index
// in pages.
//
// Time comes from an injected Clock and Run wakes on Kick, so tests drive
// every wait without sleeping.
package live
