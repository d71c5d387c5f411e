// Package upstreamtest is a fake upstream service for tests (STYLE.md 9),
// as engine/notion/notiontest is the fake Notion: one httptest server
// holding a provider's API and, beside it, its OAuth 2 authorization
// server. Nothing leaves loopback.
//
// The API answers by escaped path; the query is ignored. Set gives a path
// its standing answer and Script queues one-time answers served before
// it; a path with neither gets 404. A Response scripts the status, the
// body (text or a value encoded as JSON), headers, latency and
// validators: with an ETag or Last-Modified, a request whose
// If-None-Match or, without one, If-Modified-Since matches gets 304. WithBearerAuth
// makes the API answer 401 unless the request carries a live access
// token of the OAuth server or a key given to AddKey; Override answers
// every API request alike (an outage, a rate limit). HoldAPI keeps API
// requests waiting until released, and Held reports each request that
// starts waiting, so a test can act at the right moment without
// sleeping. Every API request is recorded (Requests) with a time from an
// injectable clock (WithClock).
//
// The OAuth server (RFC 6749 authorization code with RFC 7636 PKCE, RFC
// 7009 revocation) lives at AuthorizeURL, TokenURL and RevokeURL. The
// authorize endpoint approves at once and redirects back with a
// single-use code bound to the redirect_uri and the PKCE challenge. The
// token endpoint checks the client (HTTP Basic or body parameters, never
// both), the code, the redirect_uri and the verifier's S256. Refresh
// tokens rotate, and a spent one presented again revokes its whole
// family (RFC 9700 4.14), the behaviour that makes single-flight
// refreshing matter (security.md TH-37). Error descriptions echo what the
// client sent, as careless servers do, so a client that copies them into
// its errors fails its tests (TH-49). FailRefresh and HoldRefresh script
// the refresh faults; TokenCalls, Revocations and Family show what
// happened.
package upstreamtest
