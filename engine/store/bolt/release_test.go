package bolt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestReleaseDue: the map is released every releaseEvery, and sooner once
// the resident file pages pass releaseAbove; where they cannot be read,
// the cadence alone decides.
func TestReleaseDue(t *testing.T) {
	tests := []struct {
		name  string
		n     int64
		ok    bool
		since time.Duration
		want  bool
	}{
		{"few pages, soon after a release", releaseAbove / 2, true, releaseLookEvery, false},
		{"few pages, a period after", releaseAbove / 2, true, releaseEvery, true},
		{"many pages, soon after a release", releaseAbove, true, releaseLookEvery, true},
		{"unknown, soon after a release", 0, false, releaseLookEvery, false},
		{"unknown, a period after", 0, false, releaseEvery, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, releaseDue(tc.n, tc.ok, tc.since))
		})
	}
}
