package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reloadConfig is a development configuration with JSON logs; PROVIDERS
// is replaced by provider entries.
const reloadConfig = `
server:
  mode: development
  log: {format: json}
storage:
  path: DATA/unfurld.db
providers:
PROVIDERS`

const reloadEntry = `  - name: NAME
    upstream: {base_url: "https://api.NAME.example.com"}
    patterns:
      - name: page
        regex: '^https://NAME\.example\.com/(?<id>\d+)$'
        samples: [https://NAME.example.com/1]
        requests: [{name: page, url: "/pages/{id}"}]
        attributes: [{id: title, kind: title, path: title}]
`

func writeReloadConfig(t *testing.T, path string, names ...string) {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		b.WriteString(strings.ReplaceAll(reloadEntry, "NAME", n))
	}
	yml := strings.NewReplacer("DATA", filepath.Dir(path), "PROVIDERS", b.String()).Replace(reloadConfig)
	require.NoError(t, os.WriteFile(path, []byte(yml), 0o600))
}

// TestServeReloadsOnSIGHUP checks that SIGHUP reloads the configuration
// instead of killing the process: a good file is applied, a broken one
// is refused with its file:line:col in the log, and the server keeps
// running until SIGTERM.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildUnfurld(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	writeReloadConfig(t, cfgPath, "alpha")
	p := startUnfurld(t, bin, cfgPath)

	writeReloadConfig(t, cfgPath, "alpha", "beta")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 10*time.Second, p, "the reload log", func() bool {
		return strings.Contains(p.logs.String(), `"msg":"config reloaded"`)
	})
	require.Contains(t, p.logs.String(), `"added":["beta"]`)

	require.NoError(t, os.WriteFile(cfgPath, []byte("server:\n  listne: x\n"), 0o600))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 10*time.Second, p, "the refusal log", func() bool {
		return strings.Contains(p.logs.String(), "config reload refused")
	})
	require.Contains(t, p.logs.String(), cfgPath+`:2:3: server: unknown key \"listne\"`)

	p.stop(t)
}
