package live_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/unfurld/unfurld/engine/store/postgres/pgtest"
)

// cluster is this test binary's throwaway PostgreSQL server, for the
// replicas that share one outbox (shared_test.go).
var cluster pgtest.Cluster

func TestMain(m *testing.M) {
	// Run and the per-connection senders must all end with their
	// context or their pass (security.md TH-54).
	code := m.Run()
	cluster.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
