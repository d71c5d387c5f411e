// Package engine_test checks the package boundaries of STYLE.md 1: arrows
// point one way, and each third-party dependency stays inside the one
// package that wraps it.
package engine_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/unfurld/unfurld/"

// forbidden lists, per package, import prefixes it must not reach, even
// transitively.
var forbidden = map[string][]string{
	"engine/config":   {module + "engine/", "github.com/labstack/echo", "go.etcd.io/bbolt", "github.com/expr-lang/expr", "net/http"},
	"engine/mapping":  {"net/http", "github.com/labstack/echo", module + "engine/store", module + "engine/provider", module + "engine/upstream"},
	"engine/upstream": {"github.com/labstack/echo", module + "engine/store", module + "engine/mapping", module + "engine/provider"},
	"engine/notion":   {"github.com/labstack/echo", module + "engine/store", module + "engine/provider"},
	"engine/provider": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/store", module + "engine/issuer", module + "engine/sealing", module + "engine/upstreamauth", module + "engine/server"},
	// The three OAuth-side packages, arrows issuer → sealing → store and
	// upstreamauth → config: the issuer of our tokens to Notion seals
	// refresh successors; sealing knows records but neither OAuth role;
	// the upstream client knows neither our tokens nor the store, and
	// its callers seal what it returns.
	"engine/issuer":       {"github.com/labstack/echo", "go.etcd.io/bbolt", "net/http", module + "engine/store/bolt", module + "engine/store/postgres", module + "engine/upstreamauth", module + "engine/upstream", module + "engine/provider", module + "engine/connect", module + "engine/server"},
	"engine/sealing":      {"github.com/labstack/echo", "go.etcd.io/bbolt", "net/http", module + "engine/store/bolt", module + "engine/store/postgres", module + "engine/config", module + "engine/issuer", module + "engine/upstreamauth", module + "engine/provider", module + "engine/connect", module + "engine/server"},
	"engine/upstreamauth": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/store", module + "engine/issuer", module + "engine/sealing", module + "engine/upstream", module + "engine/provider", module + "engine/connect", module + "engine/server"},
	"engine/store":        {module + "engine/config", module + "engine/provider", "go.etcd.io/bbolt"},
	"engine/store/bolt":   {module + "engine/config", module + "engine/provider", module + "engine/mapping"},
	"engine/server":       {module + "engine/store/bolt", module + "providers", module + "cmd", "go.etcd.io/bbolt"},
	// fixture compiles through engine/compiled, whose checks reach the
	// store interface (connect, oauth); no store implementation.
	"engine/fixture": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/store/bolt", module + "engine/store/memory"},
	// compiled loads and checks; it serves nothing and stores nothing.
	"engine/compiled": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/server", module + "engine/live", module + "engine/store/bolt", module + "engine/store/memory"},
	// Live updates, the connection flow and the status report are engine
	// logic: no HTTP framework, no storage engine, no handlers.
	"engine/live":    {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/server"},
	"engine/connect": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/server"},
	"engine/status":  {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/server"},
	// Canaries go through the provider's own unfurl path: no store, no
	// handlers, nothing of live updates.
	"engine/canary": {"github.com/labstack/echo", "go.etcd.io/bbolt", module + "engine/store", module + "engine/server", module + "engine/live"},
	// The app assembles the engine; cmd chooses the store and the
	// built-in providers and passes them in.
	"engine/app": {module + "cmd", module + "providers"},

	// The shared cached store wraps any store: from engine/ it imports
	// store alone, so that every component can be handed it.
	"engine/store/cached": {
		module + "engine/app", module + "engine/canary", module + "engine/config", module + "engine/connect", module + "engine/fixture",
		module + "engine/live", module + "engine/mapping", module + "engine/notion", module + "engine/issuer", module + "engine/sealing", module + "engine/upstreamauth",
		module + "engine/provider", module + "engine/server", module + "engine/status", module + "engine/upstream",
		module + "engine/store/bolt", module + "engine/store/postgres", module + "engine/store/memory", module + "engine/store/storetest",
		"go.etcd.io/bbolt", "github.com/labstack/echo",
	},

	// The clock is the leaf every package that waits may take; it and
	// its fake (clocktest, which imports only the clock) import nothing
	// else of the engine.
	"engine/clock": {module + "engine/", "net/http"},

	// The fake upstream is a test helper every package may use, so it
	// imports nothing of the engine: no cycle, whoever adopts it.
	"engine/upstream/upstreamtest": {module + "engine/", "github.com/labstack/echo", "go.etcd.io/bbolt"},

	// The PostgreSQL store is to pgx what bolt is to bbolt.
	"engine/store/postgres": {module + "engine/config", module + "engine/provider", module + "engine/mapping", "go.etcd.io/bbolt"},
	// The throwaway cluster of the tests and the load tool drives
	// Debian's binaries and knows nothing of the engine.
	"engine/store/postgres/pgcluster": {module + "engine/", "go.etcd.io/bbolt", "github.com/labstack/echo"},
}

// prometheus is the metrics library: only engine/metrics wraps it. The
// instrumented packages declare narrow observer interfaces instead, so
// the arrows stay engine/metrics → (nothing of the engine) and app,
// cmd → engine/metrics.
const prometheus = "github.com/prometheus/"

// mayUsePrometheus lists the packages that may depend on the metrics
// library, even transitively.
var mayUsePrometheus = map[string]bool{
	"engine/metrics": true,
	"engine/app":     true,
}

// TestMetricsLibraryBoundary keeps client_golang inside engine/metrics
// and the wiring above it: the store, the providers, the server and the
// live updates only see their own observer interfaces.
func TestMetricsLibraryBoundary(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Deps " "}}`, module+"engine/...").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ": ")
		rel := strings.TrimPrefix(pkg, module)
		if mayUsePrometheus[rel] {
			continue
		}
		assert.NotContains(t, deps, prometheus, "%s depends on the metrics library; give it an observer interface instead", rel)
	}
	// engine/metrics itself imports nothing of the engine: every
	// package can be observed without a cycle.
	out, err = exec.Command("go", "list", "-deps", module+"engine/metrics").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && dep != module+"engine/metrics" {
			t.Errorf("engine/metrics depends on %s", dep)
		}
	}
}

func TestPackageBoundaries(t *testing.T) {
	for pkg, bad := range forbidden {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", module+pkg).CombinedOutput()
			require.NoError(t, err, string(out))
			for _, dep := range strings.Fields(string(out)) {
				if dep == module+pkg || strings.HasPrefix(dep, module+pkg+"/") {
					continue
				}
				for _, b := range bad {
					if dep == strings.TrimSuffix(b, "/") || strings.HasPrefix(dep, b) {
						t.Errorf("%s depends on %s (STYLE.md 1)", pkg, dep)
					}
				}
			}
		})
	}
}

// TestNoEngineImportsProviders keeps built-in provider data out of the
// engine: only cmd wires it in.
func TestNoEngineImportsProviders(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, module+"engine/...").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		require.NotContains(t, line, module+"providers", line)
	}
}

// TestOnlyPostgresImportsPgx keeps the PostgreSQL driver inside the
// store that wraps it, as bbolt stays inside engine/store/bolt: the rest
// of the engine sees store.Store, and cmd reaches pgx only through
// engine/store/postgres.
func TestOnlyPostgresImportsPgx(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, module+"...").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		pkg = strings.Fields(pkg)[0] // "p [p.test]" for test variants
		if strings.HasPrefix(pkg, module+"engine/store/postgres") {
			continue // the store, its tests and pgtest
		}
		require.NotContains(t, imports, "github.com/jackc/", pkg)
	}
}
