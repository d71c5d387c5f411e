package server_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
)

// probeStore is a store whose write probe fails on demand, as bbolt's
// commit does on a full disk, and counts the probes.
type probeStore struct {
	store.Store
	fail   atomic.Bool
	probes atomic.Int64
}

func (p *probeStore) Probe(ctx context.Context) error {
	p.probes.Add(1)
	if p.fail.Load() {
		return errors.New("probe: write /data/unfurld.db: no space left on device")
	}
	return p.Store.Probe(ctx)
}

// TestHealthzDegradedWhenStoreCannotWriteF11TH46: reads still work, but a
// failing write probe makes /healthz 503 degraded; once writes succeed
// again it is ok, without a restart. Probes are reused for a few
// seconds, so a health check does not cost a commit each time.
func TestHealthzDegradedWhenStoreCannotWriteF11TH46(t *testing.T) {
	h := newHarness(t)
	ps := &probeStore{Store: h.raw}
	h.st = cached.New(ps, cached.Options{})
	h.srv = server.New(server.Config{Settings: h.settings, Store: h.st, Registry: h.reg, Now: h.clock.Now})

	healthz := func() (int, string) {
		rec := h.do(http.MethodGet, "/healthz", "", "", "")
		return rec.Code, rec.Body.String()
	}
	code, body := healthz()
	require.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	// The disk fills: within a probe interval nothing is probed again.
	ps.fail.Store(true)
	for range 10 {
		code, _ = healthz()
		assert.Equal(t, http.StatusOK, code)
	}
	assert.Equal(t, int64(1), ps.probes.Load(), "one probe per interval")

	h.clock.Advance(5 * time.Second)
	code, body = healthz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, `{"status":"degraded","store":"not writable"}`, body)
	assert.NotContains(t, body, "no space", "internal error text stays inside")

	// Space is back.
	ps.fail.Store(false)
	h.clock.Advance(5 * time.Second)
	code, body = healthz()
	require.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	assert.Equal(t, int64(3), ps.probes.Load())
}
