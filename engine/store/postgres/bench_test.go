package postgres_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// BenchmarkPutSubscriptions writes batches of new subscriptions, as the
// server's recorder does, into a store that already holds 20,000; ns/op
// is per record, as in bolt's benchmark of the same name. The test
// cluster runs without fsync, so this measures round trips and the
// server's work, not the disk:
//
//	go test -run '^$' -bench PutSubscriptions -benchmem ./engine/store/postgres
func BenchmarkPutSubscriptions(b *testing.B) {
	for _, size := range []int{1, 30, 300} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := b.Context()
			s, err := postgres.Open(ctx, cluster.Database(b))
			require.NoError(b, err)
			defer func() { require.NoError(b, s.Close()) }()
			require.NoError(b, s.CreateConnection(ctx, store.Connection{ID: "conn", Provider: "github", AccountKey: "k"}))
			next := 0
			batch := func(n int) []store.Subscription {
				subs := make([]store.Subscription, n)
				for i := range subs {
					subs[i] = store.Subscription{
						SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: "conn", URI: fmt.Sprintf("https://github.com/o/r/issues/%d", next)},
						AttrHash:        "h",
					}
					next++
				}
				return subs
			}
			for range 20 {
				_, err := s.PutSubscriptions(ctx, batch(1000))
				require.NoError(b, err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				if n, err := s.PutSubscriptions(ctx, batch(size)); err != nil || n != size {
					b.Fatal(n, err)
				}
			}
		})
	}
}
