package bolt

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// BenchmarkDeleteConnection measures what erasing adds to a deletion, on
// a file holding 100,000 subscriptions (100 connections of 1,000) plus
// the connection deleted in each op, which has 1,000 subscriptions and a
// history (fill). erase=off is the deletion alone, the baseline;
// erase=on adds one complete erase pass (scrub), as the background
// eraser runs it after the commit:
//
//	go test -run '^$' -bench DeleteConnection -benchtime 20x ./engine/store/bolt
func BenchmarkDeleteConnection(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 100,000-subscription file")
	}
	for _, erase := range []bool{false, true} {
		b.Run(fmt.Sprintf("erase=%t", erase), func(b *testing.B) {
			s, path := openTemp(b)
			// The benchmark drives the erase itself.
			s.erase.close()
			s.erase = nil
			ctx := b.Context()
			now := time.Unix(1, 0).UTC()
			for c := range 100 {
				id := fmt.Sprintf("bulk-%03d", c)
				require.NoError(b, s.CreateConnection(ctx, store.Connection{ID: id, Provider: "github", AccountKey: id}))
				subs := make([]store.Subscription, 1000)
				for i := range subs {
					subs[i] = store.Subscription{
						SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: id, URI: fmt.Sprintf("https://github.com/org-%03d/repo/issues/%d", c, i)},
						AttrHash:        "h", CreatedAt: now, UpdatedAt: now,
					}
				}
				_, err := s.PutSubscriptions(ctx, subs)
				require.NoError(b, err)
			}
			var freed, written int
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				v := newVictim(fmt.Sprintf("v%06d", i), 1000)
				fill(b, s, v)
				b.StartTimer()
				require.NoError(b, s.DeleteConnection(ctx, v.conn.ID))
				if erase {
					b.StopTimer()
					err := s.db.Update(func(tx *bbolt.Tx) error {
						freed += len(allFreePages(tx))
						return errNoChange
					})
					require.ErrorIs(b, err, errNoChange)
					b.StartTimer()
					left, err := scrub(s.db)
					require.NoError(b, err)
					require.Zero(b, left)
					written++
				}
			}
			b.StopTimer()
			if written > 0 {
				b.ReportMetric(float64(freed)/float64(written), "freepages/op")
			}
			fi, err := os.Stat(path)
			require.NoError(b, err)
			b.ReportMetric(float64(fi.Size())/(1<<20), "fileMiB")
		})
	}
}
