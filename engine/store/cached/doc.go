// Package cached is the one store handle every part of a running unfurld
// shares: it wraps any store.Store with the state that keeps the request
// path off the disk, and keeps that state right because every write goes
// through it.
//
// It owns three things that used to live in the HTTP server, where writes
// made by the live updates, the connection flow or the token endpoint
// could not see them:
//
//   - the bearer cache: access-token and connection lookups kept for a few
//     seconds, dropped the moment a write revokes them, with an epoch so
//     that a lookup that began before an invalidation does not put back
//     what it read (bearers.go);
//   - the subscription recorder: unfurls that record a new subscription
//     share one fsync'd commit (group commit), and each returns only once
//     the commit holding its record has returned, so an answered unfurl's
//     subscription survives a crash (recorder.go);
//   - invalidation: the write methods of store.Store that revoke a bearer
//     or delete a subscription tell the cache and the recorder
//     (invalidate.go), and so, over a store several replicas share, does
//     its change feed for the writes of the other replicas (changes.go).
//
// It imports nothing from engine/ but store, so every component can be
// handed the same instance.
package cached
