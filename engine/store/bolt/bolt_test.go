package bolt

import (
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func TestMain(m *testing.M) {
	// bbolt's checker runs in its own goroutine; none may outlive Open.
	goleak.VerifyTestMain(m)
}

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "unfurld.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestOutboxConformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxStore { s, _ := openTemp(t); return s })
}

func TestScheduleConformance(t *testing.T) {
	storetest.RunSchedule(t, func(t *testing.T) storetest.ScheduleStore { s, _ := openTemp(t); return s })
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
}

// TestOpenLocked: a second Open of a file in use fails with ErrLocked
// within its timeout plus a second, naming the path, while the first
// store keeps working (TH-43, F3).
func TestOpenLocked(t *testing.T) {
	first, path := openTemp(t)
	start := time.Now()
	second, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrLocked)
	assert.Nil(t, second)
	assert.Less(t, elapsed, 1200*time.Millisecond)
	assert.Equal(t, "open "+path+": database is locked by another process (is another unfurld running?)", err.Error())

	ctx := t.Context()
	tok := store.Token{Digest: "d", Kind: store.KindAccess, Provider: "p", CreatedAt: time.Now()}
	require.NoError(t, first.CreateToken(ctx, tok))
	_, err = first.GetToken(ctx, store.KindAccess, "d")
	require.NoError(t, err)
}

// TestReopenKeepsData: records survive Close and Open, and opening a
// healthy, initialized file does not write to it.
func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	tok := store.Token{Digest: "d", Kind: store.KindRefresh, Provider: "p", ConnectionID: "c", GrantID: "g", CreatedAt: at}
	conn := store.Connection{ID: "c", Provider: "p", AccountKey: "k", NotionToken: []byte{1, 2, 3}, Status: store.StatusActive, CreatedAt: at, UpdatedAt: at}
	sub := store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}, AttrHash: "h", CreatedAt: at, UpdatedAt: at}
	require.NoError(t, s.CreateToken(ctx, tok))
	require.NoError(t, s.CreateConnection(ctx, conn))
	_, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	txid := s.txID()
	require.NoError(t, s.Close())

	s, err = Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	assert.Equal(t, txid, s.txID(), "reopening committed a transaction")
	gotTok, err := s.GetToken(ctx, store.KindRefresh, "d")
	require.NoError(t, err)
	assert.Equal(t, tok, gotTok)
	gotConn, err := s.GetConnection(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, conn, gotConn)
	gotSub, err := s.GetSubscription(ctx, sub.SubscriptionKey)
	require.NoError(t, err)
	assert.Equal(t, sub, gotSub)
}

// TestPutSubscriptionUnchangedDoesNotCommit: an identical put is answered
// from a read transaction; only a change commits, once.
func TestPutSubscriptionUnchangedDoesNotCommit(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	sub := store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}, AttrHash: "h1"}
	wrote, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	require.True(t, wrote)
	before := s.txID()

	sub.UpdatedAt = time.Now() // not part of "identical"
	wrote, err = s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	assert.False(t, wrote)
	assert.Equal(t, before, s.txID())

	sub.AttrHash = "h2"
	wrote, err = s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, before+1, s.txID())
}

// TestProbeCommitsAndLeavesNoKey: the probe is a real commit (the
// transaction id moves), leaves meta as it was, and fails once the file
// cannot be written (F11, TH-46).
func TestProbeCommitsAndLeavesNoKey(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	before := s.txID()
	require.NoError(t, s.Probe(ctx))
	assert.Equal(t, before+1, s.txID(), "one commit")
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		assert.Nil(t, tx.Bucket(bucketMeta).Get(keyProbe))
		return nil
	}))

	require.NoError(t, s.Close())
	require.Error(t, s.Probe(ctx), "a closed file cannot be written")
}

// TestDeleteConnectionIsOneTransaction: the cascade commits once, so a
// crash cannot leave half of it (TH-44).
func TestDeleteConnectionIsOneTransaction(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p"}))
	for i := range 5 {
		require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "d" + strconv.Itoa(i), Kind: store.KindAccess, ConnectionID: "c"}))
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u" + strconv.Itoa(i)}})
		require.NoError(t, err)
	}
	before := s.txID()
	require.NoError(t, s.DeleteConnection(ctx, "c"))
	assert.Equal(t, before+1, s.txID())
	for _, b := range [][]byte{bucketTokens, bucketTokensByConn, bucketConns, bucketSubs, bucketSubsByURI} {
		assert.Zero(t, bucketLen(t, s, b), "bucket %s", b)
	}
}

func bucketLen(t *testing.T, s *Store, name []byte) int {
	t.Helper()
	n := 0
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	}))
	return n
}

// TestLayout pins the bucket and key layout documented in bolt.go and the
// schema version in every value.
func TestLayout(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "dig", Kind: store.KindAccess, Provider: "p", ConnectionID: "c"}))
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Owner: "user:u", NotionToken: []byte("sealed")}))
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u\x00\x01"}, AttrHash: "h"})
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	require.NoError(t, s.CreateToken(ctx, store.Token{
		Digest: "dig2", Kind: store.KindCode, Provider: "p", GrantID: "g", RedirectURI: "https://r",
		ConsumedAt: at, Successor: []byte("next"),
	}))
	require.NoError(t, s.CreateFlow(ctx, store.Flow{ID: "f", Provider: "p", Data: []byte("sealed"), ExpiresAt: at}, 1))

	got := map[string]map[string]string{}
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			m := map[string]string{}
			got[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	}))
	zero := `"0001-01-01T00:00:00Z"`
	assert.Equal(t, map[string]map[string]string{
		"meta": {"schema": "1", "schedule_built": "1"},
		"tokens": {
			"dig": `{"v":1,"kind":"access","provider":"p","connection_id":"c","created_at":` + zero + `}`,
			"dig2": `{"v":1,"kind":"code","provider":"p","grant_id":"g","created_at":` + zero +
				`,"redirect_uri":"https://r","consumed_at":"2025-01-02T03:04:05.000000006Z","successor":"bmV4dA=="}`,
		},
		"tokens_by_conn":  {"c\x00dig": ""},
		"tokens_by_grant": {"g\x00dig2": ""},
		"connections": {"c": `{"v":1,"provider":"p","account_key":"","owner":"user:u","notion_token":"c2VhbGVk","created_at":` + zero +
			`,"updated_at":` + zero + `}`},
		"conns_by_owner":  {"p\x00\x00\x00user:u\x00c": ""},
		"flows":           {"f": `{"v":1,"provider":"p","data":"c2VhbGVk","created_at":` + zero + `,"expires_at":"2025-01-02T03:04:05.000000006Z"}`},
		"flows_by_expiry": {"2025-01-02T03:04:05.000000006Z\x00f": ""},
		"subscriptions":   {"p\x00c\x00u\x01\x01\x01\x02": `{"v":1,"attr_hash":"h","created_at":` + zero + `,"updated_at":` + zero + `}`},
		"subs_by_uri":     {"p\x00u\x01\x01\x01\x02\x00c": ""},
		"outbox":          {}, // pinned in TestOutboxLayout
		"outbox_by_due":   {},
		// schedule.go: never scheduled, never unfurled (time 0).
		"polls":            {}, // none for a subscription due at once (schedule.go)
		"polls_by_due":     {"p\x00\x00\x00\x00\x00\x00\x00\x00\x00c\x00u\x01\x01\x01\x02": ""},
		"pending":          {},
		"marks":            {}, // pinned in TestMarkWritesNoRecord
		"subs_by_unfurled": {}, // kept from the first expiry on (unfurled_test.go)
	}, got)
}

// TestOpenRefusesNewerSchema: a file written by a later schema is not
// read, nor changed.
func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("2"))
	}))
	require.NoError(t, s.Close())
	sum := fileSum(t, path)
	_, err := Open(path, Options{})
	require.ErrorContains(t, err, `database schema version "2", this unfurld reads version 1`)
	assert.Equal(t, sum, fileSum(t, path))
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// writeSample creates a database with enough records to span many pages
// and returns its path and page size.
func writeSample(t *testing.T) (string, int) {
	t.Helper()
	ctx := t.Context()
	s, path := openTemp(t)
	for i := range 300 {
		id := "conn-" + strconv.Itoa(i)
		require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: id, Provider: "github", AccountKey: id, NotionToken: make([]byte, 64)}))
		require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "digest-" + id, Kind: store.KindAccess, ConnectionID: id}))
		_, err := s.PutSubscription(ctx, store.Subscription{
			SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: id, URI: "https://github.com/o/r/issues/" + strconv.Itoa(i)},
			AttrHash:        "hash",
		})
		require.NoError(t, err)
	}
	pageSize := s.db.Info().PageSize
	require.NoError(t, s.Close())
	return path, pageSize
}

// TestOpenCorrupt: a damaged file makes Open fail with ErrCorrupt, without
// a crash, and stays byte for byte as it was; no other file appears, and
// a second attempt fails the same way (the lock was released) (TH-45,
// F12 ii-iv).
func TestOpenCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, f *os.File, size int64, pageSize int)
		want    string
		// mayOpen marks damage a structural check cannot always see
		// (bytes inside a value): Open may succeed, but must not crash.
		mayOpen bool
	}{
		{
			name: "both meta pages",
			corrupt: func(t *testing.T, f *os.File, _ int64, pageSize int) {
				for page := range 2 {
					_, err := f.WriteAt([]byte("garbage garbage garbage garbage"), int64(page*pageSize)+16)
					require.NoError(t, err)
				}
			},
			want: "invalid database",
		},
		{
			name: "truncated to half",
			corrupt: func(t *testing.T, f *os.File, size int64, _ int) {
				require.NoError(t, f.Truncate(size/2))
			},
			want: "the file is truncated",
		},
		{
			name: "truncated to three pages",
			corrupt: func(t *testing.T, f *os.File, _ int64, pageSize int) {
				require.NoError(t, f.Truncate(int64(3*pageSize)))
			},
			want: "the file is truncated",
		},
		{
			name: "truncated inside the meta pages",
			corrupt: func(t *testing.T, f *os.File, _ int64, pageSize int) {
				require.NoError(t, f.Truncate(int64(pageSize+100)))
			},
			want: "the file is truncated",
		},
		{
			name: "truncated to zero",
			corrupt: func(t *testing.T, f *os.File, _ int64, _ int) {
				require.NoError(t, f.Truncate(0))
			},
			want: "the file is empty",
		},
		{
			name: "random data pages",
			corrupt: func(t *testing.T, f *os.File, size int64, pageSize int) {
				overwrite(t, f, size, pageSize, 0)
			},
		},
		{
			name: "random page bodies under intact headers",
			corrupt: func(t *testing.T, f *os.File, size int64, pageSize int) {
				overwrite(t, f, size, pageSize, 16)
			},
		},
		{
			name:    "random bytes in a few places",
			mayOpen: true,
			corrupt: func(t *testing.T, f *os.File, size int64, pageSize int) {
				r := rand.New(rand.NewPCG(1, 2))
				pages := int(size) / pageSize
				for range 4 {
					page := 2 + r.IntN(pages-2)
					buf := make([]byte, 64)
					for i := range buf {
						buf[i] = byte(r.Uint32())
					}
					_, err := f.WriteAt(buf, int64(page*pageSize+r.IntN(pageSize-len(buf))))
					require.NoError(t, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, pageSize := writeSample(t)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			fi, err := f.Stat()
			require.NoError(t, err)
			tc.corrupt(t, f, fi.Size(), pageSize)
			require.NoError(t, f.Close())
			sum := fileSum(t, path)

			if tc.mayOpen {
				s, err := Open(path, Options{})
				if err == nil {
					readEverything(t, s)
					require.NoError(t, s.Close())
					return
				}
			}
			for attempt := range 2 {
				s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
				require.ErrorIs(t, err, ErrCorrupt, "attempt %d", attempt)
				assert.Nil(t, s)
				assert.Contains(t, err.Error(), "open "+path+": database file is corrupt: ")
				assert.Contains(t, err.Error(), tc.want)
				assert.True(t, strings.HasSuffix(err.Error(), "; it was left untouched"), err.Error())
				t.Log(err)
			}
			assert.Equal(t, sum, fileSum(t, path), "the file changed")
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			require.Len(t, entries, 1)
			assert.Equal(t, filepath.Base(path), entries[0].Name())
		})
	}
}

// readEverything reads every record of s, tolerating errors: after Open's
// check has passed, no read may crash.
func readEverything(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	conns, _ := s.ListConnections(ctx, "")
	for _, c := range conns {
		_, _ = s.GetConnection(ctx, c.ID)
		_, _ = s.GetToken(ctx, store.KindAccess, "digest-"+c.ID)
	}
	_ = s.ListSubscriptions(ctx, "", func(sub store.Subscription) error {
		_, err := s.GetSubscription(ctx, sub.SubscriptionKey)
		return err
	})
}

// TestOpenCheckedRecoversFaults: past Open's size check, bbolt reads a
// truncated file beyond its end: the pages past the end are still inside
// its 32 KiB memory map, so the read faults (SIGBUS). The fault is
// recovered as ErrCorrupt instead of killing the process, and the lock is
// released.
func TestOpenCheckedRecoversFaults(t *testing.T) {
	s, path := openTemp(t)
	require.NoError(t, s.CreateToken(t.Context(), store.Token{Digest: "d", Kind: store.KindAccess}))
	pageSize := int64(s.db.Info().PageSize)
	var size int64
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		size = tx.Size()
		return nil
	}))
	require.NoError(t, s.Close())
	require.LessOrEqual(t, size, int64(32<<10), "the pages must fit bbolt's smallest map")
	require.NoError(t, os.Truncate(path, 2*pageSize))
	sum := fileSum(t, path)
	for attempt := range 2 {
		db, err := openChecked(path, Options{LockTimeout: 200 * time.Millisecond}, true)
		require.ErrorIs(t, err, ErrCorrupt, "attempt %d", attempt)
		assert.Nil(t, db)
		assert.Contains(t, err.Error(), "reading it failed: runtime error: invalid memory address")
	}
	assert.Equal(t, sum, fileSum(t, path))
}

// overwrite fills every page after the two meta pages with seeded random
// bytes, from offset skip within each page.
func overwrite(t *testing.T, f *os.File, size int64, pageSize, skip int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, pageSize-skip)
	for off := int64(2 * pageSize); off < size; off += int64(pageSize) {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		_, err := f.WriteAt(buf, off+int64(skip))
		require.NoError(t, err)
	}
}

// TestOpenOneMetaPageCorrupt: with one meta page damaged bbolt falls back
// to the other, the previous transaction; that is acceptable (F12 i).
func TestOpenOneMetaPageCorrupt(t *testing.T) {
	path, _ := writeSample(t)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("garbage garbage garbage garbage"), 16)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	conns, err := s.ListConnections(t.Context(), "github")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(conns), 299)
}

func BenchmarkGetToken(b *testing.B) {
	ctx := b.Context()
	s, _ := openTemp(b)
	const n = 1000
	for i := range n {
		require.NoError(b, s.CreateToken(ctx, store.Token{Digest: "digest-" + strconv.Itoa(i), Kind: store.KindAccess, Provider: "p", ConnectionID: "c"}))
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetToken(ctx, store.KindAccess, "digest-"+strconv.Itoa(i%n)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func benchSub(i int) store.Subscription {
	return store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: "conn", URI: "https://github.com/o/r/issues/" + strconv.Itoa(i)},
		AttrHash:        "hash", ETag: `"etag"`,
	}
}

func BenchmarkPutSubscriptionUnchanged(b *testing.B) {
	ctx := b.Context()
	s, _ := openTemp(b)
	const n = 1000
	for i := range n {
		_, err := s.PutSubscription(ctx, benchSub(i))
		require.NoError(b, err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if wrote, err := s.PutSubscription(ctx, benchSub(i%n)); err != nil || wrote {
				b.Error("wrote", wrote, err)
				return
			}
			i++
		}
	})
}

func BenchmarkPutSubscriptionChanged(b *testing.B) {
	ctx := b.Context()
	s, _ := openTemp(b)
	sub := benchSub(0)
	i := 0
	for b.Loop() {
		sub.AttrHash = strconv.Itoa(i)
		i++
		if wrote, err := s.PutSubscription(ctx, sub); err != nil || !wrote {
			b.Fatal("wrote", wrote, err)
		}
	}
}
