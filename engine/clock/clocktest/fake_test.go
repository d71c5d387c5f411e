package clocktest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
)

// fired reports whether ch has a value, without waiting.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimersFireWhenReached(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Time{})
	require.Equal(t, clocktest.Start, c.Now())

	now := c.After(0)
	soon := c.After(time.Minute)
	later := c.After(time.Hour)
	_, ok := fired(now)
	assert.True(t, ok, "a zero wait fires at once")
	assert.Equal(t, 2, c.Pending())

	c.Advance(59 * time.Second)
	_, ok = fired(soon)
	assert.False(t, ok, "not yet")
	c.Advance(time.Second)
	at, ok := fired(soon)
	require.True(t, ok)
	assert.Equal(t, clocktest.Start.Add(time.Minute), at)
	_, ok = fired(later)
	assert.False(t, ok)

	c.Set(clocktest.Start) // never back
	assert.Equal(t, clocktest.Start.Add(time.Minute), c.Now())
	c.Set(clocktest.Start.Add(2 * time.Hour))
	_, ok = fired(later)
	assert.True(t, ok)
	assert.Zero(t, c.Pending())
	assert.Equal(t, []time.Duration{0, time.Minute, time.Hour}, c.Waits())
	assert.Len(t, c.Waiting(), 3, "each wait is announced")
}

func TestSteppingFakeMovesOnWait(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	c := clocktest.NewStepping(start)
	at, ok := fired(c.After(time.Hour))
	require.True(t, ok, "fires at once")
	assert.Equal(t, start.Add(time.Hour), at)
	assert.Equal(t, start.Add(time.Hour), c.Now())
	c.Advance(time.Minute)
	assert.Equal(t, start.Add(time.Hour+time.Minute), c.Now())
	assert.Equal(t, []time.Duration{time.Hour}, c.Waits())
	assert.Zero(t, c.Pending())
}
