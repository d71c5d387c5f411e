package app_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
)

// TestIntegrityCheckInBackground_F12: the store's integrity check (passed
// as Options.Check, which serve gets from the bbolt store it opened
// without one) runs once Run starts, while the server already answers. A
// pass is logged; a failure is logged as an error and /healthz answers
// 503 degraded from then on, so an orchestrator sees a damaged file that
// no longer stops the start.
func TestIntegrityCheckInBackground_F12(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		body    string
		logLine string
	}{
		{"Passes", nil, http.StatusOK, `{"status":"ok"}`, "store integrity check passed"},
		{
			"Fails", errors.New("database file is corrupt: page 7 unreachable"), http.StatusServiceUnavailable,
			`{"status":"degraded","store":"integrity check failed"}`, "STORE INTEGRITY CHECK FAILED",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlowEnv(t)
			checked := make(chan struct{})
			a, err := app.New(app.Options{
				Config: e.cfg, Registry: e.reg, Store: e.st, Logger: e.logger, Now: e.clock.Now, Clock: e.clock,
				Check: func(context.Context) error {
					defer close(checked)
					return tc.err
				},
			})
			require.NoError(t, err)
			health := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				a.Server.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
				return rec
			}
			require.Equal(t, http.StatusOK, health().Code, "answers before the check")

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.Run(ctx)
			}()
			t.Cleanup(func() { cancel(); <-done })
			select {
			case <-checked:
			case <-time.After(10 * time.Second): // a guard against a hang, not a wait
				t.Fatal("the check did not run")
			}
			require.Eventually(t, func() bool { return health().Code == tc.status }, 10*time.Second, 5*time.Millisecond)
			rec := health()
			assert.JSONEq(t, tc.body, rec.Body.String())
			assert.Eventually(t, func() bool { return strings.Contains(e.logs.String(), tc.logLine) }, 10*time.Second, 5*time.Millisecond)
		})
	}
}
