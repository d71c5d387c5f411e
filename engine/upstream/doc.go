// Package upstream makes every outbound call to provider APIs and builds
// their URLs from templates.
//
// A Client is built once per provider at load (STYLE.md rule 1) and owns
// its own http.Transport: no proxy from the environment, a dial-time SSRF
// guard (code.dny.dev/ssrf) unless private networks are explicitly allowed,
// a host allowlist checked before anything is sent and on every redirect,
// a per-request deadline, and a cap on the decompressed body (security.md
// TH-30, TH-32, A13). Non-2xx answers become *StatusError, which carries the
// code and Retry-After but never the upstream body (TH-36).
//
// Identical concurrent requests are collapsed onto the first caller's call
// (Client.Do) and, when a TTL is set, 2xx answers are cached briefly, so Notion's repeated calls for
// one link cost one upstream request (TH-38). Both are keyed by method, URL,
// credential identity, headers and body, so one user's answer is never
// served to another credential (TH-27).
//
// Templates (ParseURLTemplate, ParseTemplate) turn `{group}` and
// `{request.gjson.path}` placeholders into values. URL values are escaped
// per path segment or per query component and can never stand in the
// scheme, host or port; dot segments, control characters and oversized
// values are refused (TH-29, TH-30).
package upstream
