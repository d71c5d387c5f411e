package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommandHelp: `unfurld help CMD` and `unfurld CMD --help` exit 0 and
// print a description, the flags the command parses and an example, on
// stdout; they run nothing.
func TestCommandHelp(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			t.Run(c.name+" "+args[1], func(t *testing.T) {
				t.Parallel()
				e, out, errb := testEnv(nil)
				require.Equal(t, exitOK, run(t.Context(), args, e), errb.String())
				assert.Empty(t, errb.String())
				assert.Contains(t, out.String(), "Usage: unfurld "+c.name)
				_, example, found := strings.Cut(out.String(), "\nExample:\n  ")
				require.True(t, found, out.String())
				assert.Contains(t, example, "unfurld "+c.name)
				assert.Greater(t, len(c.description), 40, "a description of what the command does")
			})
		}
	}
	// Flags come from the command's own flag set.
	e, out, _ := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--help"}, e))
	assert.Contains(t, out.String(), "-server URL")
	assert.Contains(t, out.String(), "-connection")

	e, out, _ = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"help"}, e))
	for _, c := range commands() {
		assert.Contains(t, out.String(), "unfurld "+c.name)
	}
}

// TestBadFlagPointsToHelp: a flag error exits 2 and names the help.
func TestBadFlagPointsToHelp(t *testing.T) {
	t.Parallel()
	e, out, errb := testEnv(nil)
	assert.Equal(t, exitUsage, run(t.Context(), []string{"validate", "--nope"}, e))
	assert.Empty(t, out.String())
	assert.Contains(t, errb.String(), "flag provided but not defined: -nope")
	assert.Contains(t, errb.String(), "Run 'unfurld validate --help'")
}

// TestConfigFromEnvironment: UNFURLD_CONFIG names the file when --config
// is absent; --config wins.
func TestConfigFromEnvironment(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("server: {mode: nonsense}\n"), 0o600))
	vars := map[string]string{"UNFURLD_CONFIG": "../../config.example.yaml"}

	e, out, errb := testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"validate"}, e), errb.String())
	assert.Contains(t, out.String(), "config.example.yaml: ok")

	e, _, errb = testEnv(vars)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"validate", "--config", bad}, e))
	assert.Contains(t, errb.String(), "server.mode")
}

func TestReadBuildInfo(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name              string
		bi                *debug.BuildInfo
		ok                bool
		version, revision string
		want              string
	}{
		{name: "toolchain", bi: bi, ok: true, want: "unfurld v1.2.3 revision abc123 (2026-12-01T10:00:00Z, modified, go1.26.0)"},
		{name: "docker stamp wins", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, ok: true, version: "v1.3.0", revision: "def456", want: "unfurld v1.3.0 revision def456 (go1.26.0)"},
		{name: "nothing known", want: "unfurld devel revision unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, readBuildInfo(tc.bi, tc.ok, tc.version, tc.revision).String())
		})
	}
	e, out, _ := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"version"}, e))
	assert.Regexp(t, `^unfurld \S+ revision \S+`, out.String())
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(ok.Close)
	degraded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"degraded","store":"not writable"}`))
	}))
	t.Cleanup(degraded.Close)
	down := freePort(t)
	tests := []struct {
		name, url string
		code      int
		msg       string
	}{
		{name: "ok", url: ok.URL + "/healthz", code: exitOK},
		{name: "degraded", url: degraded.URL + "/healthz", code: exitFailure, msg: "503 Service Unavailable"},
		{name: "down", url: "http://" + down + "/healthz", code: exitFailure, msg: "connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _, errb := testEnv(nil)
			assert.Equal(t, tc.code, run(t.Context(), []string{"healthcheck", "--url", tc.url}, e), errb.String())
			assert.Contains(t, errb.String(), tc.msg)
		})
	}
}
