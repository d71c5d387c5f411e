// Package upstreamauth is the client side of a provider's upstream OAuth 2
// authorization-code flow (golang.org/x/oauth2): authorize URLs with state
// and PKCE, code exchange, single-flight refresh and grant revocation. It
// also owns Token, a user's credential at the upstream (OAuth tokens or
// API-key fields), which callers seal with engine/sealing before storing.
// It holds no HTTP framing and nothing of the store.
package upstreamauth
