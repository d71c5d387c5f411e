// Package notiontest is a fake Notion for tests (STYLE.md 9): an httptest
// server for the two endpoints unfurld calls, POST /v1/oauth/token (R2,
// protocol 4) and PATCH /v1/external/object (R7, protocol 7).
//
// The token endpoint checks HTTP Basic against the configured integration
// credentials (401 invalid_client, OAuth style, otherwise) and redeems only
// codes registered with AddCode, once each (400 invalid_grant otherwise).
// The object endpoint checks the Bearer token against tokens it issued or
// was given with AddToken (401 unauthorized, API style, otherwise), then
// answers from a script set with ScriptPatch, and 200 {} once the script
// is used up. Both endpoints record every request, with a time from an
// injectable clock, for assertions.
//
// Faults for security.md F7-F9: WithTokenHang and WithTokenStatus make
// every exchange hang or fail, ScriptToken scripts single answers, and a
// Response with Hang set blocks until the caller gives up. Hung reports
// each request that started hanging, so a test can cancel at the right
// moment without sleeping.
package notiontest
