// Package issuer is our side of the OAuth flow with Notion (protocol 1-4):
// it mints our authorization codes, redeems them and refresh tokens for
// access tokens, and owns the token primitives the unfurl route checks
// bearers with (minting, digesting, telling kinds apart). Our tokens are
// never stored in clear; the store only ever sees their SHA-256 digests
// (security.md TH-41). It holds no HTTP framing: engine/server's token
// route binds the request and renders the answer.
package issuer
