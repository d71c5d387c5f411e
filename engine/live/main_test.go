package live_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Run and the per-connection senders must all end with their
	// context or their pass (security.md TH-54).
	goleak.VerifyTestMain(m)
}
