// Package oauth owns unfurld's two OAuth roles (protocol 1-4): issuing our
// codes and tokens to Notion, and running the upstream OAuth client flow.
//
// This file set starts with the token primitives the unfurl route needs:
// minting and digesting. Our tokens are never stored in clear; the store
// only ever sees their SHA-256 digests (security.md TH-41).
package oauth
