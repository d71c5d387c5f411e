package compiled

import (
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// Reload statuses (Report.Status).
const (
	// StatusReloaded: the new providers are being served.
	StatusReloaded = "reloaded"
	// StatusRefused: the file had errors; the running configuration
	// keeps serving, unchanged.
	StatusRefused = "refused"
)

// Report is the outcome of one reload: what POST /admin/reload answers
// and what SIGHUP logs.
type Report struct {
	// Status is StatusReloaded or StatusRefused.
	Status string `json:"status"`
	// Errors are the problems that refused the file, one
	// "file:line:col: path: message" line each.
	Errors []string `json:"errors"`
	// Warnings are problems that did not refuse it.
	Warnings []string `json:"warnings,omitempty"`
	// RestartRequired are the changed keys a reload cannot apply
	// (RestartRequired); they take effect at the next restart.
	RestartRequired []string `json:"restart_required"`
	// Added, Changed and Removed name the providers the reload touched.
	provider.Changes
}

// Refused is the report of a file that did not load; errs are its
// problems.
func Refused(errs config.Errors) Report {
	r := Report{Status: StatusRefused, Errors: []string{}, RestartRequired: []string{}}
	r.add(errs)
	return r
}

// add files errs under Errors or Warnings, dropping repeated lines.
func (r *Report) add(errs config.Errors) {
	seen := map[string]bool{}
	for _, e := range errs {
		line := e.Error()
		if seen[line] {
			continue
		}
		seen[line] = true
		if e.Warning {
			r.Warnings = append(r.Warnings, line)
		} else {
			r.Errors = append(r.Errors, line)
		}
	}
}

// Reloaded is the report of an applied reload.
func Reloaded(ch provider.Changes, restart []string, warnings config.Errors) Report {
	r := Report{Status: StatusReloaded, Errors: []string{}, RestartRequired: restart, Changes: ch}
	if r.RestartRequired == nil {
		r.RestartRequired = []string{}
	}
	r.add(warnings)
	return r
}
