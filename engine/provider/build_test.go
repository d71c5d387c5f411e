package provider_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

var update = flag.Bool("update", false, "rewrite golden files")

func noEnv(string) (string, bool) { return "", false }

// buildAgainst builds provider name of the configuration src with its
// UPSTREAM placeholder set to upstream (a fake's URL), and closes the
// registry when the test ends.
func buildAgainst(tb testing.TB, src, upstream, name string) *provider.Provider {
	tb.Helper()
	cfg, errs := config.Parse(name+".yaml", []byte(strings.ReplaceAll(src, "UPSTREAM", upstream)), config.LoadOptions{LookupEnv: noEnv})
	require.False(tb, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(tb, berrs.HasErrors(), "%v", berrs)
	tb.Cleanup(reg.Close)
	p, ok := reg.Get(name)
	require.True(tb, ok)
	return p
}

// TestBuildGolden compiles each testdata/<name>.bad.yaml and compares
// every problem, positions included, with <name>.bad.golden; a
// .warn.yaml must build, and its warnings are compared the same way
// (STYLE.md 9, config fixtures).
func TestBuildGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, errs := config.Load(f, config.LoadOptions{LookupEnv: noEnv})
			require.False(t, errs.HasErrors(), "config itself must load: %v", errs)
			reg, berrs := provider.Build(cfg, provider.Options{})
			got := berrs.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create %s", golden)
			assert.Equal(t, string(want), got)
			if strings.HasSuffix(f, ".bad.yaml") {
				assert.True(t, berrs.HasErrors())
				assert.Nil(t, reg)
			} else {
				assert.False(t, berrs.HasErrors())
				assert.NotNil(t, reg)
			}
		})
	}
}
