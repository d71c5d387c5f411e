package upstream

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadBody: whatever length was announced (none, exact, too short,
// too long), the whole body is read, and a read error is returned.
func TestReadBody(t *testing.T) {
	t.Parallel()
	c := &Client{}
	body := strings.Repeat("0123456789", 700)
	for _, size := range []int64{-1, 0, 1, 511, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 100} {
		got, err := c.readBody(iotest.HalfReader(strings.NewReader(body)), size)
		require.NoError(t, err, "size %d", size)
		assert.Equal(t, body, string(got), "size %d", size)
	}
	got, err := c.readBody(strings.NewReader(""), -1)
	require.NoError(t, err)
	assert.Empty(t, got)

	boom := errors.New("boom")
	_, err = c.readBody(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 3)
	require.ErrorIs(t, err, boom)

	// Bodies of unknown length are read through a reused buffer: an
	// earlier body must not change when a later one is read (the cache
	// and collapsed callers keep it).
	first, err := c.readBody(strings.NewReader(body), -1)
	require.NoError(t, err)
	second, err := c.readBody(strings.NewReader(strings.Repeat("x", len(body))), -1)
	require.NoError(t, err)
	assert.Equal(t, body, string(first))
	assert.Equal(t, strings.Repeat("x", len(body)), string(second))
}

// TestIsDotSegments: "." and ".." parts are found between either kind of
// separator, and only whole parts count (TH-29).
func TestIsDotSegments(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		".": true, "..": true, "a/..": true, `..\a`: true, "a//./b": true, `a\.\b`: true, "/..": true,
		"": false, "a": false, "...": false, "a..b": false, ".a": false, "a/.b/c.": false, "//": false,
	} {
		assert.Equal(t, want, isDotSegments(s), "%q", s)
	}
}
