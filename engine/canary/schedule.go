package canary

import (
	"context"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/provider"
)

// FirstRunDelay is how long after start the first scheduled run waits
// (or the interval, when shorter): soon enough to show a result in
// /admin/status, late enough that a crash-looping server does not call
// the upstream on every restart.
const FirstRunDelay = 5 * time.Minute

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Runner runs the canaries; its Registry's providers are scheduled
	// by their canary.interval (0: not scheduled).
	Runner *Runner
	// Registry is the Runner's registry.
	Registry *provider.Registry
	// Baseline, when set, is what runs compare with.
	Baseline *Baseline
	// Clock drives the schedule; nil is the wall clock.
	Clock clock.Clock
	// OnRun, when set, receives every scheduled run's report, after
	// Summaries reflect it: the place to export metrics.
	OnRun func(*Report)
}

// Scheduler runs each provider's canaries every canary.interval and keeps
// the last result per provider in memory.
type Scheduler struct {
	runner *Runner
	base   *Baseline
	clock  clock.Clock
	onRun  func(*Report)

	order    []string
	interval map[string]time.Duration
	next     map[string]time.Time

	mu   sync.Mutex
	last map[string]ProviderResult
}

// NewScheduler returns a scheduler whose first runs fall due
// FirstRunDelay (or the interval, if shorter) from now.
func NewScheduler(opts SchedulerOptions) *Scheduler {
	s := &Scheduler{
		runner: opts.Runner, base: opts.Baseline, clock: opts.Clock, onRun: opts.OnRun,
		interval: map[string]time.Duration{}, next: map[string]time.Time{}, last: map[string]ProviderResult{},
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	now := s.clock.Now()
	for _, p := range opts.Registry.All() {
		d := p.Config.Canary.Interval.D()
		if d <= 0 {
			continue
		}
		s.order = append(s.order, p.Name)
		s.interval[p.Name] = d
		s.next[p.Name] = now.Add(min(d, FirstRunDelay))
	}
	return s
}

// Scheduled names the providers with a canary.interval, in configuration
// order.
func (s *Scheduler) Scheduled() []string { return s.order }

// Run runs the canaries as they fall due until ctx ends. It returns at
// once when no provider is scheduled.
func (s *Scheduler) Run(ctx context.Context) {
	if len(s.order) == 0 {
		return
	}
	for {
		next := s.RunDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(max(next.Sub(s.clock.Now()), 0)):
		}
	}
}

// RunDue runs, in one Runner.Run, every provider whose run is due now,
// and returns when the next one falls due (the zero time when none is
// scheduled). Run calls it in a loop; tests call it between steps of a
// fake clock.
func (s *Scheduler) RunDue(ctx context.Context) time.Time {
	now := s.clock.Now()
	var due []string
	for _, name := range s.order {
		if !now.Before(s.next[name]) {
			due = append(due, name)
		}
	}
	if len(due) > 0 {
		rep := s.runner.Run(ctx, due, s.base)
		if ctx.Err() != nil {
			return now // cut short: not a result worth keeping
		}
		s.mu.Lock()
		for _, p := range rep.Providers {
			s.last[p.Provider] = p
		}
		// The next run is an interval after this one was due, not after
		// it ended, so the schedule does not drift by the run's length.
		for _, name := range due {
			for !s.next[name].After(now) {
				s.next[name] = s.next[name].Add(s.interval[name])
			}
		}
		s.mu.Unlock()
		if s.onRun != nil {
			s.onRun(rep)
		}
	}
	var next time.Time
	for _, name := range s.order {
		if next.IsZero() || s.next[name].Before(next) {
			next = s.next[name]
		}
	}
	return next
}

// Summary is a provider's last scheduled run as /admin/status shows it.
type Summary struct {
	// At is when the run finished.
	At      time.Time `json:"at"`
	Skipped string    `json:"skipped,omitempty"`
	OK      int       `json:"ok"`
	Changed int       `json:"changed"`
	Failed  int       `json:"failed"`
	// Problems has one line per sample that changed or failed.
	Problems []string `json:"problems,omitempty"`
	// NextAt is when the next run falls due.
	NextAt time.Time `json:"next_at"`
}

// Summaries returns every scheduled provider's last run; a provider not
// run yet has only NextAt.
func (s *Scheduler) Summaries() map[string]Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Summary, len(s.order))
	for _, name := range s.order {
		sum := Summary{NextAt: s.next[name].UTC()}
		if p, ok := s.last[name]; ok {
			sum.At, sum.Skipped = p.At, p.Skipped
			sum.OK, sum.Changed, sum.Failed = p.Counts()
			for _, sr := range p.Samples {
				if sr.Verdict != VerdictOK {
					sum.Problems = append(sum.Problems, sr.Verdict+" "+sr.URL+": "+sr.problem())
				}
			}
		}
		out[name] = sum
	}
	return out
}
