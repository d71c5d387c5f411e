package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata")

// testEnv is the only environment tests see; nothing reads os.Getenv.
func testEnv() map[string]string {
	return map[string]string{
		"PORT":                       "9090",
		"EMPTY":                      "",
		"TRACKER_NOTION_SECRET":      "0123456789abcdef0123456789abcdef-notion",
		"TRACKER_INTEGRATION_SECRET": "fedcba9876543210fedcba9876543210-integ",
		"TRACKER_OAUTH_SECRET":       "oauth-app-secret",
		"UNFURLD_SECRET_KEYS":        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"SHORT_SECRET":               "too-short",
		"SAME_SECRET":                "same-same-same-same-same-same-same-same",
		"DATABASE_URL":               "postgres://unfurld:env-password@db.internal:5432/unfurld",
	}
}

func testOptions() LoadOptions {
	env := testEnv()
	return LoadOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Builtins:  os.DirFS(filepath.Join("testdata", "builtin")),
	}
}

// TestGoodFiles loads every testdata/*.good.yaml: none may have a problem,
// not even a warning.
func TestGoodFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.good.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			cfg, errs := Load(file, testOptions())
			require.Empty(t, errs.Error())
			require.NotNil(t, cfg)
			assert.NotEmpty(t, cfg.Providers)
		})
	}
}

// TestBadFiles loads every testdata/*.bad.yaml and compares the printed
// problems with <name>.bad.golden; run `go test -update` to rewrite them.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bad.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			_, errs := Load(file, testOptions())
			require.True(t, errs.HasErrors(), "want errors, got:\n%s", errs.Error())
			got := errs.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create it")
			assert.Equal(t, string(want), got)
		})
	}
}
