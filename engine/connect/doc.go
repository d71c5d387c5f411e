// Package connect runs the connection flow of protocol 1.5 R1 to R3: a
// user arrives from Notion's authorize redirect, signs in at the upstream
// (OAuth 2, an API key, or nothing for public APIs), approves on our
// consent page, and we exchange Notion's code for a Notion token, store
// the connection and send the browser back to Notion with our own
// one-time code.
//
// The package owns the state machine and every check of it; it knows no
// HTTP framework. engine/server maps requests onto Service methods and
// renders the pages they ask for.
//
// A pending flow lives in the store, sealed as a whole with the keyring
// and bound to a browser cookie whose digest is the record key (TH-03): a
// stolen database file shows neither Notion's code, the upstream state,
// the PKCE verifier nor the credential.
package connect
