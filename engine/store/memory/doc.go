// Package memory is a map-backed store.Store for tests. It passes the same
// conformance suite as the bbolt store (storetest), so tests that use it
// exercise the real contract; nothing survives the process.
package memory
