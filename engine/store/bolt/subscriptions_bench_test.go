package bolt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// BenchmarkPutSubscriptions writes batches of new subscriptions, as the
// server's recorder does, into a store that already holds 20,000; ns/op
// is per record. The per-commit cost (two fsyncs, freelist, meta) is
// shared by the batch, so bigger batches cost less per record:
//
//	go test -run '^$' -bench PutSubscriptions -benchmem ./engine/store/bolt
func BenchmarkPutSubscriptions(b *testing.B) {
	for _, size := range []int{1, 30, 300} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := b.Context()
			s, _ := openTemp(b)
			require.NoError(b, s.CreateConnection(ctx, store.Connection{ID: "conn", Provider: "github", AccountKey: "k"}))
			next := 0
			batch := func(n int) []store.Subscription {
				subs := make([]store.Subscription, n)
				for i := range subs {
					subs[i] = benchSub(next)
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
