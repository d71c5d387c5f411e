package bolt

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "unfurld.db")
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestFileMode(t *testing.T) {
	s, path := openTemp(t)
	defer s.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
}

// A second opener gives up after the lock timeout with a clear error,
// and the first keeps working (TH-43, F3).
func TestSecondOpenerIsLockedOut(t *testing.T) {
	s, path := openTemp(t)
	defer s.Close()
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), path)
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	require.NoError(t, s.CreateToken(t.Context(), store.Token{Digest: "d", Kind: store.KindAccess, Provider: "p"}))
}

func TestReopenKeepsData(t *testing.T) {
	s, path := openTemp(t)
	require.NoError(t, s.CreateConnection(t.Context(), store.Connection{ID: "c1", Provider: "p", AccountKey: "k"}))
	require.NoError(t, s.Close())
	s, err := Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()
	c, err := s.GetConnection(t.Context(), "c1")
	require.NoError(t, err)
	assert.Equal(t, "k", c.AccountKey)
}

// An unchanged subscription must not commit: unfurls call PutSubscription
// on every request.
func TestPutSubscriptionUnchangedDoesNotCommit(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	sub := store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}, AttrHash: "h"}
	wrote, err := s.PutSubscription(t.Context(), sub)
	require.NoError(t, err)
	require.True(t, wrote)
	before := s.txID()
	for range 10 {
		wrote, err = s.PutSubscription(t.Context(), sub)
		require.NoError(t, err)
		require.False(t, wrote)
	}
	assert.Equal(t, before, s.txID())
}

// Corrupt or truncated files stop Open with an error, no panic, and the
// file is left exactly as it was (TH-45, F12).
func TestCorruptFileIsRefusedAndKept(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"both meta pages", func(t *testing.T, path string) {
			overwrite(t, path, 0, 64)
			overwrite(t, path, 4096, 64)
		}},
		{"data pages", func(t *testing.T, path string) {
			for off := int64(2 * 4096); off < 6*4096; off += 4096 {
				overwrite(t, path, off, 256)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 5000))
		}},
		{"empty", func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 0))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, path := openTemp(t)
			for i := range 200 {
				_, err := s.PutSubscription(t.Context(), store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: string(rune('a'+i%26)) + string(rune(i))}, AttrHash: "h"})
				require.NoError(t, err)
			}
			require.NoError(t, s.Close())
			tc.corrupt(t, path)
			before := sum(t, path)

			_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "left untouched")
			assert.Equal(t, before, sum(t, path), "the file is never replaced or repaired")
		})
	}
}

func overwrite(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(0xA5 ^ i)
	}
	_, err = f.WriteAt(junk, off)
	require.NoError(t, err)
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}
