// Package compiled is the one way a configuration file becomes something
// unfurld can run: load it (engine/config: decode, expand ${ENV},
// defaults, validate), compile its providers (engine/provider) and run
// the checks serve would make before it touches a store (Check). serve,
// reload, validate, preview, test, notion-settings, status and token all
// go through Load, so a file one of them accepts is a file every other
// one accepts (STYLE.md 0, rule 1: fail at startup, not per request).
//
// It sits between provider and server in the arrows of STYLE.md 1: it
// imports config, provider, connect, notion and oauth, and nothing that
// serves HTTP, so engine/server and engine/live tests load through it too.
package compiled
