// Package canary runs every pattern's sample URLs against the real
// upstream, through the provider's own unfurl path, and says per provider
// what still maps and what changed since a recorded baseline: an
// attribute that went missing or changed kind, a status that changed, an
// upstream that fails. `unfurld canary` runs it once; serve runs it on
// canary.interval (Scheduler) and shows the last run in /admin/status.
//
// A baseline holds, per sample, the status and the attribute ids with
// their kinds, never values: values change legitimately (an issue gets
// closed), the shape of the answer should not. Canaries run with a
// service credential (providers[].canary.credential, or a none-auth
// provider's own token), which is never logged nor reported.
package canary
