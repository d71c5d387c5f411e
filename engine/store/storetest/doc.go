// Package storetest is the conformance suite for store.Store (STYLE.md 8,
// after dexidp/dex storage/conformance). Every implementation runs it from
// a test of a few lines:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
//	}
//
// The suite pins the behaviour callers rely on beyond the method
// signatures: sentinel errors, atomic updates, cascading deletes (TH-40),
// kind-checked token lookups (TH-25), write-only-on-change subscriptions,
// copies in and out, and context checks.
package storetest
