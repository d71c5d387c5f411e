package canary_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/canary"
)

// ran lists the providers of each report.
func ran(reps []*canary.Report) [][]string {
	out := make([][]string, len(reps))
	for i, r := range reps {
		out[i] = []string{}
		for _, p := range r.Providers {
			out[i] = append(out[i], p.Provider)
		}
	}
	return out
}

// TestSchedulerIntervals: with the top-level canary.interval 24h and
// keyed's own 48h, nothing runs at start; all run FirstRunDelay later;
// then the others every 24h and keyed every 48h. The clock is a
// fake: no test sleeps.
func TestSchedulerIntervals(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	up := newFakeUpstream(t)
	reg := registry(t, up)
	var reps []*canary.Report
	s := canary.NewScheduler(canary.SchedulerOptions{
		Runner: canary.New(canary.Options{Registry: reg, Clock: clock}), Registry: reg, Clock: clock,
		OnRun: func(r *canary.Report) { reps = append(reps, r) },
	})
	t0 := clock.Now()
	assert.Equal(t, []string{"things", "keyed", "pair", "nocred"}, s.Scheduled())

	assert.Equal(t, t0.Add(canary.FirstRunDelay), s.RunDue(t.Context()))
	assert.Empty(t, reps)
	sum := s.Summaries()
	assert.True(t, sum["things"].At.IsZero(), "not run yet")
	assert.Equal(t, t0.Add(canary.FirstRunDelay), sum["things"].NextAt)

	clock.Advance(canary.FirstRunDelay)
	first := t0.Add(canary.FirstRunDelay)
	assert.Equal(t, first.Add(24*time.Hour), s.RunDue(t.Context()), "the next run counts from when this one was due")
	require.Len(t, reps, 1)
	assert.Equal(t, [][]string{{"things", "keyed", "pair", "nocred"}}, ran(reps))

	daily := []string{"things", "pair", "nocred"}
	for _, want := range [][]string{daily, {"things", "keyed", "pair", "nocred"}, daily} {
		clock.Advance(first.Add(time.Duration(len(reps)) * 24 * time.Hour).Sub(clock.Now()))
		s.RunDue(t.Context())
		assert.Equal(t, want, ran(reps)[len(reps)-1])
	}
	assert.Len(t, reps, 4)
}

// TestSchedulerSummaries: the last run per provider is kept for
// /admin/status, with one line per problem.
func TestSchedulerSummaries(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	up := newFakeUpstream(t)
	reg := registry(t, up)
	runner := canary.New(canary.Options{Registry: reg, Clock: clock})
	base, _ := canary.NewBaseline(runner.Run(t.Context(), nil, nil))
	breakUpstream(up)
	s := canary.NewScheduler(canary.SchedulerOptions{Runner: runner, Registry: reg, Clock: clock, Baseline: base})
	clock.Advance(canary.FirstRunDelay)
	s.RunDue(t.Context())

	sum := s.Summaries()
	th := sum["things"]
	assert.Equal(t, [3]int{1, 2, 1}, [3]int{th.OK, th.Changed, th.Failed})
	assert.Equal(t, []string{
		"changed https://things.example.com/items/2: attribute author missing (was inline.plain_text)",
		"changed https://things.example.com/items/3: status 404, was 200",
	}, th.Problems[:2])
	assert.Contains(t, th.Problems[2], "failed https://things.example.com/items/4: request item: status")
	assert.Equal(t, canary.SkipNoCredential, sum["nocred"].Skipped)
	assert.Equal(t, 1, sum["keyed"].OK)
	assert.False(t, sum["keyed"].At.IsZero())
}

// TestSchedulerRunLoop: Run keeps running as runs fall due and returns
// when ctx ends; a scheduler with nothing scheduled returns at once.
func TestSchedulerRunLoop(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	reg := registry(t, newFakeUpstream(t))
	ctx, cancel := context.WithCancel(t.Context())
	runs := 0
	s := canary.NewScheduler(canary.SchedulerOptions{
		Runner: canary.New(canary.Options{Registry: reg, Clock: clock}), Registry: reg, Clock: clock,
		OnRun: func(*canary.Report) {
			if runs++; runs == 3 {
				cancel()
			}
		},
	})
	t0 := clock.Now()
	s.Run(ctx)
	assert.Equal(t, 3, runs)
	assert.True(t, clock.Now().After(t0.Add(48*time.Hour)), "three runs a day apart, on the fake clock")

	for i := range reg.All() {
		reg.All()[i].Config.Canary.Interval = 0
	}
	idle := canary.NewScheduler(canary.SchedulerOptions{Runner: canary.New(canary.Options{Registry: reg}), Registry: reg, Clock: clock})
	assert.Empty(t, idle.Scheduled())
	idle.Run(t.Context()) // returns: nothing to schedule
}
