// Package provider turns the providers of a configuration into compiled,
// ready-to-run providers and runs unfurls with them.
//
// Build compiles everything once at load (STYLE.md rule 1): the URL
// regexes, the sample checks, the request templates and every expression.
// The request path then only matches, fetches and maps: no YAML, regex or
// expression compilation happens per request.
//
// An unfurl (Provider.Unfurl) goes: check the URI (TH-28) → match a
// pattern (protocol 9) → run the pattern's upstream requests in order →
// map the responses to attributes (protocol 6) → encode the envelope
// (protocol 5.3). Every failure an operator or upstream can cause ends as
// an error operation (protocol 5.4), never as a Go error or a 500.
package provider
