package live_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// BenchmarkDeliverPostgres measures what one delivered item costs on
// PostgreSQL, Notion answering at once: "local" paces in memory as one
// process may, "shared" claims with a lease and reserves each slot in
// the database, as replicas must. Their ratio is the price of sharing.
//
//	go test -run XXX -bench DeliverPostgres ./engine/live
func BenchmarkDeliverPostgres(b *testing.B) {
	for _, mode := range []string{"local", "shared"} {
		b.Run(mode, func(b *testing.B) {
			st, err := postgres.Open(b.Context(), cluster.Database(b))
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			e := newEnvWith(b, st, func(o *live.Options) {
				o.Notion = &stubNotion{}
				o.Rate, o.Burst = 1e6, 1000 // pacing never waits: the cost, not the pace
				o.Logger = nil
				if mode == "shared" {
					o.Shared = st
				}
			})
			const conns = 8
			for c := range conns {
				e.connect(fmt.Sprintf("c%d", c), "tracker")
			}
			var keys []store.SubscriptionKey
			for i := range b.N {
				keys = append(keys, e.subscribe("tracker", fmt.Sprintf("c%d", i%conns), fmt.Sprintf("https://t.example/%d", i)))
			}
			b.ResetTimer()
			for _, k := range keys {
				e.push(k, "v1")
			}
			e.drain()
			b.StopTimer()
			depth, err := st.OutboxDepth(b.Context())
			require.NoError(b, err)
			require.Empty(b, depth)
		})
	}
}
