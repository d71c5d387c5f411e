package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// BenchmarkUnfurlHandlerCold is issue 2's scenario c in process: the
// full echo app with the result and upstream caches off, a distinct URI
// per request (so every unfurl records a new subscription) and an
// instant loopback upstream serving the ~6 KB item. Profile it with:
//
//	go test -run '^$' -bench HandlerCold -benchmem -cpuprofile cpu.out ./engine/server
func BenchmarkUnfurlHandlerCold(b *testing.B) {
	body := benchItemJSON(b)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/projects/acme/items/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(up.Close)
	yml := strings.ReplaceAll(testConfig, "UPSTREAM", up.URL)
	yml = strings.ReplaceAll(yml, "cache_ttl: 1m", "cache_ttl: 0s")
	cfg, errs := config.Parse("bench.yaml", []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(b, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(b, berrs.HasErrors(), "%v", berrs)
	b.Cleanup(reg.Close)

	ctx := b.Context()
	st := memory.New()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	connID := oauth.NewID()
	require.NoError(b, st.CreateConnection(ctx, store.Connection{ID: connID, Provider: "tracker", AccountKey: "k-" + connID, Status: store.StatusActive, CreatedAt: now}))
	tok, err := oauth.IssueAccessToken(ctx, st, "tracker", connID, now, 0)
	require.NoError(b, err)
	srv := server.New(server.Config{Settings: cfg.Server, Store: st, Registry: reg, Now: func() time.Time { return now }})
	b.Cleanup(func() { require.NoError(b, srv.Close(context.Background())) })
	h := srv.Handler()

	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			uri := "https://tracker.example.com/acme/items/" + strconv.FormatUint(next.Add(1), 10)
			rec := serveUnfurl(h, tok, []byte(`{"uri":"`+uri+`"}`))
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"path":["attributes"]`)) {
				b.Errorf("status %d body %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}
