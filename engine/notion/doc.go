// Package notion holds Notion's wire types for the Link Preview protocol
// (the unfurl callback request and response, attribute objects, error
// operations) and the Client for the two Notion endpoints unfurld calls:
// POST /v1/oauth/token, which exchanges the code Notion hands our authorize
// URL for a Notion access token (R2, protocol 4), and PATCH
// /v1/external/object, which pushes updated attributes or an error for a
// previewed URL (R7, protocol 7).
//
// The Client never follows redirects, ignores proxy settings from the
// environment, bounds every call with its own deadline and caps the bytes
// it reads. Non-2xx answers become *APIError, parsed from either of
// Notion's two error shapes (protocol 10 #23). Tokens, client secrets and
// codes are carried as config.Secret or kept out of every error string
// (security.md TH-49).
//
// The fake Notion used by tests lives in package notiontest.
package notion
