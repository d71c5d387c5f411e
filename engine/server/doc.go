// Package server is unfurld's HTTP face: the echo v4 app, its routes and
// middleware, and the one HTTPErrorHandler (STYLE.md 7). Handlers bind
// input, call the engine and render; decisions live in engine/provider,
// engine/connect and engine/issuer.
//
// Routes, per provider under /providers/<name>/ (protocol 1.3):
//
//	POST   /providers/<name>/unfurl   Notion's unfurl call (protocol 5.1)
//	DELETE /providers/<name>/unfurl   every preview of a URL was deleted (protocol 5.6)
//	GET    /healthz                   liveness and store health (reads and a write probe)
//	POST   /admin/connections/<id>/delete  disconnect one connection (admin token)
package server
