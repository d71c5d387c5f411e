package clocktest

import (
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
)

// Start is where a Fake made by New starts: a fixed instant, so times in
// failures read the same on every run.
var Start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Fake is a clock that moves only when the test moves it (Set, Advance),
// or, when made by NewStepping, when the code under test waits. It is
// safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	now      time.Time
	stepping bool
	timers   []timer
	waits    []time.Duration
	waiting  chan struct{}
}

// timer is one pending After.
type timer struct {
	at time.Time
	ch chan time.Time
}

var _ clock.Clock = (*Fake)(nil)

// New returns a Fake at start (Start when zero) whose timers fire when
// Set or Advance reach them.
func New(start time.Time) *Fake {
	if start.IsZero() {
		start = Start
	}
	return &Fake{now: start, waiting: make(chan struct{}, 64)}
}

// NewStepping returns a Fake at start (Start when zero) whose After moves
// the clock on by d and fires at once: a loop that waits between steps
// runs its whole schedule without a test driving it, and Waits tells
// what it waited.
func NewStepping(start time.Time) *Fake {
	c := New(start)
	c.stepping = true
	return c
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the time once the clock has
// moved d on; d <= 0 fires at once. Each call is recorded (Waits) and
// announced on Waiting.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	switch {
	case c.stepping:
		if d > 0 {
			c.now = c.now.Add(d)
		}
		ch <- c.now
	case d <= 0:
		ch <- c.now
	default:
		c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	}
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

// Set moves the clock to t, never back, and fires the timers due.
func (c *Fake) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	c.timers = kept
}

// Advance moves the clock on by d and fires the timers due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	t := c.now.Add(d)
	c.mu.Unlock()
	c.Set(t)
}

// Waits returns the durations After was called with, oldest first.
func (c *Fake) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// Waiting gets a value (while it has room for 64) each time After is
// called, so a test knows when the code under test has gone idle.
func (c *Fake) Waiting() <-chan struct{} { return c.waiting }

// Pending returns how many timers have not fired yet.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
