package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestCompact_TH40: compaction keeps every live record, drops the deleted
// ones and gives the space back.
func TestCompact_TH40(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	kept, gone := newVictim("c1", 300), newVictim("c2", 1500)
	fill(t, s, kept)
	fill(t, s, gone)
	require.NoError(t, s.DeleteConnection(ctx, gone.conn.ID))
	require.NoError(t, s.Close())

	res, err := Compact(path, Options{})
	require.NoError(t, err)
	assert.Less(t, res.After, res.Before)
	assert.Empty(t, findIn(t, path, gone.needles()))
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left")

	s2, err := Open(path, Options{})
	require.NoError(t, err)
	defer s2.Close()
	got, err := s2.GetConnection(ctx, kept.conn.ID)
	require.NoError(t, err)
	want := kept.conn
	want.UpdatedAt = got.UpdatedAt // fill updates it
	assert.Equal(t, want, got)
	n := 0
	require.NoError(t, s2.ListSubscriptions(ctx, "", func(_ store.Subscription) error { n++; return nil }))
	assert.Equal(t, len(kept.uris), n)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// TestCompactRefusesWhileServing_F3: the server's lock keeps compaction
// off a file in use.
func TestCompactRefusesWhileServing_F3(t *testing.T) {
	_, path := openTemp(t)
	_, err := Compact(path, Options{LockTimeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
}

// TestCompactDiesBeforeRename_F2: a compaction stopped before the rename,
// as by kill -9, leaves the original byte for byte.
func TestCompactDiesBeforeRename_F2(t *testing.T) {
	s, path := openTemp(t)
	fill(t, s, newVictim("c1", 300))
	require.NoError(t, s.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	crash := errors.New("killed")
	_, err = compact(path, Options{}, func() error { return crash })
	require.ErrorIs(t, err, crash)

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the original must be untouched")
	s2, err := Open(path, Options{})
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}
