package bolt

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
