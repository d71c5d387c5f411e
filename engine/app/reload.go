package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
)

// Reload loads the configuration file again (Options.Load) and, when it
// loads, compiles and checks without an error, serves its providers:
// added ones get their routes, removed ones answer 404 (their stored
// connections and subscriptions stay), changed ones are compiled anew
// with empty caches, unchanged ones keep theirs. A file with errors is
// refused whole and the running configuration keeps serving.
//
// Requests in flight finish on the provider they looked up at their
// start (provider.Registry.Swap); the connection flow, live refresh and
// polling see the new set from the next lookup on. Keys outside
// providers are reported in RestartRequired and keep their running
// value. Reload logs its report and returns it.
func (a *App) Reload(ctx context.Context) compiled.Report {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	r := a.reload()
	if r.Status == compiled.StatusRefused {
		a.log.ErrorContext(ctx, "config reload refused; the running configuration keeps serving",
			"errors", r.Errors)
		return r
	}
	a.log.InfoContext(ctx, "config reloaded",
		"added", r.Added, "changed", r.Changed, "removed", r.Removed)
	if len(r.RestartRequired) > 0 {
		a.log.WarnContext(ctx, "config reload: these keys take effect at the next restart",
			"restart_required", r.RestartRequired)
	}
	return r
}

// reloadRoute is what POST /admin/reload calls: Reload, or nil (no
// route) when there is no file to read again.
func (a *App) reloadRoute() func(context.Context) compiled.Report {
	if a.load == nil {
		return nil
	}
	return a.Reload
}

func (a *App) reload() compiled.Report {
	if a.load == nil {
		r := compiled.Refused(nil)
		r.Errors = []string{"reload is not available: this app was built without a configuration file to read again"}
		return r
	}
	next, errs := a.load()
	if next == nil {
		return compiled.Refused(errs)
	}
	restart := compiled.RestartRequired(a.running, next.Config)
	if len(restart) > 0 {
		// The file compiled with its own settings; serve its providers
		// with the running ones, the only ones in effect until a
		// restart.
		next.Registry.Close()
		var rerrs config.Errors
		next, rerrs = compiled.Compile(compiled.Running(a.running, next.Config), compiled.Options{Logger: a.log, Now: a.now})
		if next == nil {
			return compiled.Refused(rerrs)
		}
	}
	prune, err := a.Connect.SetProviders(next.Registry.All())
	if err != nil {
		next.Registry.Close()
		return compiled.Refused(config.Errors{{Pos: config.Pos{File: next.Config.File}, Msg: err.Error()}})
	}
	poller, err := a.newPoller(next.Registry)
	if err != nil {
		next.Registry.Close()
		prune()
		return compiled.Refused(config.Errors{{Pos: config.Pos{File: next.Config.File}, Msg: err.Error()}})
	}
	polled := pollPlan(a.reg)
	ch := a.reg.Swap(next.Registry)
	prune()
	a.running = next.Config
	if !slices.Equal(polled, pollPlan(a.reg)) {
		a.swapPoller(poller)
	}
	a.retire(ch.Retired)
	return compiled.Reloaded(ch, restart, errs)
}

// retire closes the idle upstream connections of providers a reload
// replaced once server.write_timeout has passed: no request answers
// later than that, so none still uses them. Waiting is only tidiness:
// closing idle connections never breaks a request still running, whose
// connection is busy, not idle. A grace wait rather than reference
// counting keeps the request path free of bookkeeping.
func (a *App) retire(ps []*provider.Provider) {
	if len(ps) == 0 {
		return
	}
	grace := max(a.running.Server.WriteTimeout.D(), time.Second)
	time.AfterFunc(grace, func() { provider.CloseRetired(ps) })
}

// pollPlan lists what the poller is built from: each polled provider's
// name, interval and hourly budget. Refreshes look providers up by name
// in the shared registry, so a reload that leaves this list alone
// leaves the poller running, with its schedules and budgets.
func pollPlan(reg *provider.Registry) []string {
	var out []string
	for _, p := range reg.All() {
		l := p.Config.Live
		if l.IsEnabled() && l.PollInterval.D() > 0 {
			out = append(out, fmt.Sprintf("%s %s %d", p.Name, l.PollInterval.D(), l.MaxRequestsPerHour))
		}
	}
	return out
}

// newPoller builds a poller over reg with the running one's options. reg
// is the registry every part shares; it is swapped in place, so the
// poller's refreshes look providers up in the new set.
func (a *App) newPoller(reg *provider.Registry) (*live.Poller, error) {
	return live.NewPoller(live.PollerOptions{
		Refresher: a.Refresher, Store: a.Store, Budget: a.budget, Registry: reg, Logger: a.log, Clock: a.clock, Owner: a.owner,
		// A shorter poll_interval takes effect at once, not after the
		// polls the longer one scheduled.
		PreviousIntervals: a.CurrentPoller().Intervals(),
	})
}

// CurrentPoller returns the poller in use: the one New built, or the
// one the last reload that touched a provider built.
func (a *App) CurrentPoller() *live.Poller {
	a.pollerMu.Lock()
	defer a.pollerMu.Unlock()
	return a.Poller
}

// swapPoller makes p the poller and tells pollLoop to restart with it,
// when a reload changed which providers poll or how often. The schedule
// is in the store, so the subscriptions keep their places; a shortened
// interval moves those beyond it into it; hourly budgets and in-memory
// statistics start again.
func (a *App) swapPoller(p *live.Poller) {
	a.pollerMu.Lock()
	defer a.pollerMu.Unlock()
	a.Poller = p
	close(a.pollerSwapped)
	a.pollerSwapped = make(chan struct{})
}

// pollLoop runs the current poller until ctx ends, restarting it with
// the new one after each reload that changed the providers.
func (a *App) pollLoop(ctx context.Context) {
	for {
		a.pollerMu.Lock()
		p, swapped := a.Poller, a.pollerSwapped
		a.pollerMu.Unlock()
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(pctx)
		}()
		select {
		case <-ctx.Done():
		case <-swapped:
		}
		stop()
		<-done
		if ctx.Err() != nil {
			return
		}
	}
}
