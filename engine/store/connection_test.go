package store

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWithFailure: bounded, oldest first, and the caller's slice is never
// written through.
func TestWithFailure(t *testing.T) {
	t.Parallel()
	var c Connection
	for i := range MaxConnectionFailures {
		c = c.WithFailure(ConnectionEvent{URI: strconv.Itoa(i)})
	}
	require.Len(t, c.Failures, MaxConnectionFailures)
	before := c
	after := c.WithFailure(ConnectionEvent{URI: "new"})
	require.Len(t, after.Failures, MaxConnectionFailures)
	assert.Equal(t, "1", after.Failures[0].URI)
	assert.Equal(t, "new", after.Failures[MaxConnectionFailures-1].URI)
	assert.Equal(t, "0", before.Failures[0].URI, "the old value is unchanged")
	assert.Equal(t, strconv.Itoa(MaxConnectionFailures-1), before.Failures[MaxConnectionFailures-1].URI)
}
