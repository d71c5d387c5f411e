package bolt

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestCheckOpenStore_TH45: a store opened without its check (to listen
// at once) is checked afterwards by Check: a healthy file passes; once
// its pages are damaged under it, Check fails with ErrCorrupt instead
// of crashing, and a cancelled check stops with its context's error
// (F12).
func TestCheckOpenStore_TH45(t *testing.T) {
	path, pageSize := writeSample(t)
	s, err := Open(path, Options{SkipCheck: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Check(t.Context()))

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, s.Check(cancelled), context.Canceled)

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	overwrite(t, f, fi.Size(), pageSize, 16)
	require.NoError(t, f.Close())
	err = s.Check(t.Context())
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "check "+path+": database file is corrupt: ")
}

// TestCheckBesideWriters: the check of an open store runs while unfurls
// write (serve runs it after listening). bbolt's own tx.Check reads the
// freelist that commits rewrite, so in a read transaction it raced with
// them (the race detector saw it in serve's tests); the check of an open
// store now compares with its snapshot's freelist page instead
// (pagecheck.go), finds nothing wrong while commits free and reuse
// pages, and every write still lands (F1, F12).
func TestCheckBesideWriters(t *testing.T) {
	path, _ := writeSample(t)
	s, err := Open(path, Options{SkipCheck: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	conn := store.Connection{ID: "c-check", Provider: "p", Status: store.StatusActive}
	require.NoError(t, s.CreateConnection(ctx, conn))

	const writes = 200
	done := make(chan error, 1)
	go func() {
		for i := range writes {
			k := store.SubscriptionKey{Provider: "p", ConnectionID: conn.ID, URI: fmt.Sprintf("https://x.example/%d", i)}
			if _, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h"}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 5 {
		require.NoError(t, s.Check(ctx))
	}
	require.NoError(t, <-done)
	n := 0
	require.NoError(t, s.ListSubscriptions(ctx, "p", func(store.Subscription) error { n++; return nil }))
	assert.Equal(t, writes, n)
}
