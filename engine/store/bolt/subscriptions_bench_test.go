package bolt

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// BenchmarkPutSubscriptions writes batches of new subscriptions, as the
// server's recorder does, into a store that already holds 20,000; ns/op
// is per record. The per-commit cost (two fsyncs, freelist, meta) is
// shared by the batch, so bigger batches cost less per record. Besides
// the wall time it reports the process's CPU time per record (cpu-ns/op,
// kernel included: the page writes and fsyncs are most of a commit) and
// the bbolt pages written per record (pages/op). A batch of 12 is what a
// cold unfurl's commit carries under load with 64 clients:
//
//	go test -run '^$' -bench PutSubscriptions -benchmem ./engine/store/bolt
func BenchmarkPutSubscriptions(b *testing.B) {
	for _, size := range []int{1, 12, 30, 300} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := b.Context()
			s, _ := openTemp(b)
			require.NoError(b, s.CreateConnection(ctx, store.Connection{ID: "conn", Provider: "github", AccountKey: "k"}))
			next := 0
			batch := func(n int) []store.Subscription {
				subs := make([]store.Subscription, n)
				for i := range subs {
					subs[i] = benchSub(next)
					subs[i].UnfurledAt = time.Unix(1_700_000_000+int64(next), 0)
					next++
				}
				return subs
			}
			for range 20 {
				_, err := s.PutSubscriptions(ctx, batch(1000))
				require.NoError(b, err)
			}
			pages := writes(s)
			cpu := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				if n, err := s.PutSubscriptions(ctx, batch(size)); err != nil || n != size {
					b.Fatal(n, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(writes(s)-pages)/float64(b.N), "pages/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writes is how many pages the store's commits have written so far.
func writes(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
