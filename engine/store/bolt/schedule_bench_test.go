package bolt

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// benchSubs is how many subscriptions BenchmarkSchedule's file holds:
// the million, or UNFURLD_BENCH_SUBS for a quicker run.
func benchSubs(tb testing.TB) int {
	if v := os.Getenv("UNFURLD_BENCH_SUBS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(tb, err, "UNFURLD_BENCH_SUBS")
		return n
	}
	return 1_000_000
}

// benchKey is the key of the i-th generated subscription: 1,000
// connections of one provider, links spread over 200 repositories.
func benchKey(i int) store.SubscriptionKey {
	return store.SubscriptionKey{
		Provider: "github", ConnectionID: fmt.Sprintf("conn-%04d", i%1000),
		URI: fmt.Sprintf("https://github.com/acme/repo-%03d/issues/%d", i%200, i),
	}
}

// writeLegacyFile writes a bbolt file of n subscriptions as the version
// before the schedule left it (records and subs_by_uri, no schedule
// buckets), straight through bbolt in large transactions of sorted keys:
// a generator for benchmarks, not a measurement. The records look like
// those of a polled link (hash, validators, a refresh story).
func writeLegacyFile(tb testing.TB, path string, n int) {
	tb.Helper()
	s, err := Open(path, Options{})
	require.NoError(tb, err)
	ctx := tb.Context()
	for c := range min(n, 1000) {
		id := fmt.Sprintf("conn-%04d", c)
		require.NoError(tb, s.CreateConnection(ctx, store.Connection{ID: id, Provider: "github", AccountKey: id, Status: store.StatusActive}))
	}
	require.NoError(tb, s.Close())

	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(tb, err)
	defer db.Close()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	val, err := encode("subscription", subRecord{
		V: schemaVersion, AttrHash: strings.Repeat("ab", 32), ETag: `W/"0f1e2d3c4b5a69788796a5b4c3d2e1f0"`,
		LastModified: "Sun, 01 Nov 2026 12:00:00 GMT", CreatedAt: at, UpdatedAt: at,
		Refresh: refreshRecord{At: at, Trigger: "poll", Outcome: "not_modified", Status: 304},
	})
	require.NoError(tb, err)
	keys := make([]store.SubscriptionKey, n)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	put := func(bucket []byte, key func(store.SubscriptionKey) []byte, v []byte) {
		slices.SortFunc(keys, func(a, b store.SubscriptionKey) int { return cmp.Compare(string(key(a)), string(key(b))) })
		for start := 0; start < n; start += 100_000 {
			require.NoError(tb, db.Update(func(tx *bbolt.Tx) error {
				b := tx.Bucket(bucket)
				b.FillPercent = 0.9 // keys arrive in order
				for _, k := range keys[start:min(start+100_000, n)] {
					if err := b.Put(key(k), v); err != nil {
						return err
					}
				}
				return nil
			}))
		}
	}
	put(bucketSubs, subKey, val)
	put(bucketSubsByURI, subURIKey, nil)
	require.NoError(tb, db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketPolls, bucketPollsByDue, bucketPending, bucketSubsByUnfurled} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyScheduleBuilt)
	}))
}

// copyFile copies src to dst, for a fresh copy of a generated file.
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	require.NoError(tb, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(tb, err)
	_, err = io.Copy(out, in)
	require.NoError(tb, err)
	require.NoError(tb, out.Close())
}

// pageAlloc is the bytes of pages the store's write transactions have
// allocated so far: each commit writes every page it dirtied to a newly
// allocated one, so the difference over a run is what it wrote, but for
// one meta page per commit.
func pageAlloc(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc()
}

// BenchmarkSchedule measures the poll schedule on a file of a million
// subscriptions (UNFURLD_BENCH_SUBS to change it); the file is generated
// once, then copied. Its sub-benchmarks:
//
//   - open/build-schedule: the schedule's build after the first Open of
//     a file from the version before (Open returns at once; the build
//     runs in the background);
//   - open/check and open/skip-check: later Opens with and without the
//     integrity check (page cache warm: the cold figure is the issue's
//     16 s, which Store.Check now moves after listening);
//   - poll/claim+schedule: one wave as the poller runs it, ClaimDuePolls
//     of 100 then SchedulePolls of the 100, per claimed subscription;
//   - poll/rewrite-record, the baseline in the same run: the write the
//     poller made before for a poll that found nothing new, a refresh
//     record per subscription through PutSubscriptions.
//
// page-B/poll is the bytes of pages committed per polled subscription.
// Run it with
//
//	go test -run '^$' -bench Schedule -benchtime 3x -timeout 1h ./engine/store/bolt
func BenchmarkSchedule(b *testing.B) {
	n := benchSubs(b)
	dir := b.TempDir()
	legacy := filepath.Join(dir, "legacy.db")
	writeLegacyFile(b, legacy, n)
	built := filepath.Join(dir, "built.db")
	copyFile(b, legacy, built)
	s, err := Open(built, Options{SkipCheck: true})
	require.NoError(b, err)
	s.build.wait()
	require.NoError(b, s.Close())

	b.Run("open/build-schedule", func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			path := filepath.Join(b.TempDir(), fmt.Sprintf("copy-%d.db", i))
			copyFile(b, legacy, path)
			b.StartTimer()
			s, err := Open(path, Options{SkipCheck: true})
			require.NoError(b, err)
			s.build.wait()
			b.StopTimer()
			require.NoError(b, s.Close())
			require.NoError(b, os.Remove(path))
			b.StartTimer()
		}
	})
	for _, skip := range []bool{false, true} {
		name := map[bool]string{false: "open/check", true: "open/skip-check"}[skip]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				s, err := Open(built, Options{SkipCheck: skip})
				require.NoError(b, err)
				b.StopTimer()
				require.NoError(b, s.Close())
				b.StartTimer()
			}
		})
	}

	const wave = 100
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	// round goes on across the calls of a sub-benchmark (b.N grows), so
	// that no wave repeats an earlier one.
	round := 0
	b.Run("poll/claim+schedule", func(b *testing.B) {
		s, err := Open(built, Options{SkipCheck: true})
		require.NoError(b, err)
		defer s.Close()
		ctx := b.Context()
		before := pageAlloc(s)
		b.ResetTimer()
		for range b.N {
			round++
			at := now.Add(time.Duration(round) * time.Second)
			subs, err := s.ClaimDuePolls(ctx, "github", "bench", at, time.Minute, wave)
			require.NoError(b, err)
			require.Len(b, subs, wave)
			slots := make([]store.PollSlot, len(subs))
			for j, sub := range subs {
				slots[j] = store.PollSlot{SubscriptionKey: sub.SubscriptionKey, Next: at.Add(10 * time.Minute)}
			}
			got, err := s.SchedulePolls(ctx, "bench", slots)
			require.NoError(b, err)
			require.Equal(b, wave, got)
		}
		b.StopTimer()
		polls := float64(b.N * wave)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/polls, "ns/poll")
		b.ReportMetric(float64(pageAlloc(s)-before)/polls, "page-B/poll")
	})
	b.Run("poll/rewrite-record", func(b *testing.B) {
		s, err := Open(built, Options{SkipCheck: true})
		require.NoError(b, err)
		defer s.Close()
		ctx := b.Context()
		before := pageAlloc(s)
		b.ResetTimer()
		for range b.N {
			round++
			at := now.Add(time.Duration(round) * time.Second)
			recs := make([]store.Subscription, wave)
			for j := range recs {
				// Spread like the schedule's claims: links due together
				// are anywhere in key order.
				recs[j] = store.Subscription{
					SubscriptionKey: benchKey((round*wave + j) * 7919 % n), ETag: `W/"0f1e2d3c4b5a69788796a5b4c3d2e1f0"`,
					LastModified: "Sun, 01 Nov 2026 12:00:00 GMT", UpdatedAt: at,
					Refresh: store.RefreshRecord{At: at, Trigger: "poll", Outcome: "not_modified", Status: 304},
				}
			}
			got, err := s.PutSubscriptions(ctx, recs)
			require.NoError(b, err)
			require.Equal(b, wave, got)
		}
		b.StopTimer()
		polls := float64(b.N * wave)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/polls, "ns/poll")
		b.ReportMetric(float64(pageAlloc(s)-before)/polls, "page-B/poll")
	})
}

// BenchmarkWebhookMarks measures the commit of one webhook naming 10,000
// linked links on a file of a million subscriptions (UNFURLD_BENCH_SUBS
// to change it), as engine/live's marker makes it: one PutSubscriptions
// of the pending marks, sorted, of links spread over the whole file.
//
//   - marks: the marks as they are written now, beside the records
//     (marks.go);
//   - rewrite-records, the baseline in the same run: the same links'
//     records rewritten, a refresh record each, which is what a mark
//     cost when it was kept in the record.
//
// page-B/mark is the bytes of pages committed per marked link. Run it with
//
//	go test -run '^$' -bench WebhookMarks -benchtime 5x -timeout 1h ./engine/store/bolt
func BenchmarkWebhookMarks(b *testing.B) {
	n := benchSubs(b)
	const links = 10_000
	path := filepath.Join(b.TempDir(), "built.db")
	writeLegacyFile(b, path, n)
	s, err := Open(path, Options{SkipCheck: true})
	require.NoError(b, err)
	s.build.wait()
	b.Cleanup(func() { _ = s.Close() })
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	round := 0
	webhook := func(story func(at time.Time) store.RefreshRecord) []store.Subscription {
		round++
		at := now.Add(time.Duration(round) * time.Second)
		subs := make([]store.Subscription, 0, links)
		for j := range links {
			k := benchKey((round*links + j) * 7919 % n)
			subs = append(subs, store.Subscription{SubscriptionKey: k, UpdatedAt: at, Refresh: story(at)})
		}
		slices.SortFunc(subs, func(x, y store.Subscription) int {
			return cmp.Compare(string(subKey(x.SubscriptionKey)), string(subKey(y.SubscriptionKey)))
		})
		return subs
	}
	for _, tc := range []struct {
		name  string
		story func(at time.Time) store.RefreshRecord
	}{
		{"marks", func(at time.Time) store.RefreshRecord {
			return store.RefreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending}
		}},
		{"rewrite-records", func(at time.Time) store.RefreshRecord {
			return store.RefreshRecord{At: at, Trigger: "webhook", Outcome: "changed", Status: 200}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := b.Context()
			var took time.Duration
			before := pageAlloc(s)
			for range b.N {
				subs := webhook(tc.story)
				start := time.Now()
				got, err := s.PutSubscriptions(ctx, subs)
				took += time.Since(start)
				require.NoError(b, err)
				require.Positive(b, got)
			}
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/webhook")
			b.ReportMetric(float64(pageAlloc(s)-before)/float64(b.N*links), "page-B/mark")
		})
	}
}
