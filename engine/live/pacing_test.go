package live

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestBackoffBounds_F9: each wait lies within the documented jitter
// bounds around base*2^(n-1), the waits grow strictly whatever the
// jitter draws until the cap, and the cap holds for any n.
func TestBackoffBounds_F9(t *testing.T) {
	const base, ceiling, jitter = time.Second, time.Minute, 0.2
	for n := 1; n <= 12; n++ {
		d := min(base<<(n-1), ceiling)
		lo, hi := time.Duration(float64(d)*(1-jitter)), time.Duration(float64(d)*(1+jitter))
		for _, r := range []float64{0, 0.5, 0.999999} {
			got := backoff(n, base, ceiling, jitter, r)
			assert.GreaterOrEqual(t, got, lo, "n=%d r=%g", n, r)
			assert.Less(t, got, hi, "n=%d r=%g", n, r)
		}
		if d < ceiling/2 {
			assert.Less(t, backoff(n, base, ceiling, jitter, 0.999999), backoff(n+1, base, ceiling, jitter, 0), "n=%d", n)
		}
	}
	assert.Equal(t, time.Second, backoff(1, base, ceiling, jitter, 0.5))
	assert.Equal(t, 4*time.Second, backoff(3, base, ceiling, jitter, 0.5))
	assert.Equal(t, ceiling, backoff(5000, base, ceiling, jitter, 0.5), "no overflow")
}

// TestPacerSlots_F10: a burst, then one slot per interval; a hold lets
// one request go at its end and spaces the rest.
func TestPacerSlots_F10(t *testing.T) {
	const interval = 100 * time.Millisecond
	const tolerance = 2 * interval // burst of 3
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var p pacer
	var got []time.Duration
	for range 5 {
		got = append(got, p.reserve(now, interval, tolerance).Sub(now))
	}
	assert.Equal(t, []time.Duration{0, 0, 0, interval, 2 * interval}, got)
	assert.False(t, p.idle(now.Add(2*interval), tolerance))
	assert.True(t, p.idle(now.Add(3*interval), tolerance), "back at rest once the slots passed")

	p = pacer{}
	p.holdUntil(now.Add(time.Second), tolerance)
	later := now.Add(time.Second)
	assert.Equal(t, later, p.reserve(later, interval, tolerance))
	assert.Equal(t, later.Add(interval), p.reserve(later, interval, tolerance))
	assert.False(t, p.idle(later.Add(-time.Nanosecond), tolerance))
}
