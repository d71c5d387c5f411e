package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExamplesFixtures runs each example's fixture cases
// (examples/<name>/testdata) against its own configuration, as .ci/run
// does: examples/multi-provider's unassigned ticket proves an optional
// request reading a null value is skipped, not a "not found".
func TestExamplesFixtures(t *testing.T) {
	dirs, err := filepath.Glob("../../examples/*/testdata")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	// builtin:github-oauth's upstream OAuth app, as .ci/run exports it.
	vars := map[string]string{"GITHUB_CLIENT_ID": "ci-github-client-id", "GITHUB_CLIENT_SECRET": "ci-github-client-secret"}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			e, out, errb := testEnv(vars)
			cfg := filepath.Join(filepath.Dir(dir), "config.yaml")
			require.Equal(t, exitOK, run(t.Context(), []string{"test", "--config", cfg, "-v", dir}, e), out.String()+errb.String())
			assert.Contains(t, out.String(), ", 0 failed")
		})
	}
}
