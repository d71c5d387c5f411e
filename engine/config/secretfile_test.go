package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretSources: the loader records where each secret came from, so
// production mode can refuse literals and messages can name the source
// without the value (TH-53, TH-49).
func TestSecretSources(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "secret_file.good.yaml"), testOptions())
	require.Empty(t, errs.Error())

	assert.Equal(t, "file-secret-0123456789abcdef-0123456789", cfg.Providers[0].Notion.ClientSecret.Reveal(), "one trailing newline dropped")
	assert.Equal(t, SecretSource{Kind: SourceFile, File: filepath.Join("testdata", "secrets", "notion"), Pos: Pos{File: filepath.Join("testdata", "secret_file.good.yaml"), Line: 11, Col: 27}},
		cfg.Sources["providers.tracker.notion.client_secret"])
	assert.Equal(t, SourceEnv, cfg.Sources["providers.tracker.notion.integration_client_secret"].Kind)
	assert.Equal(t, "TRACKER_INTEGRATION_SECRET", cfg.Sources["providers.tracker.notion.integration_client_secret"].Env)
	assert.Equal(t, SourceFile, cfg.Sources["server.secret_keys"].Kind)
	assert.Equal(t, "read from the file "+filepath.Join("testdata", "secrets", "keys"), cfg.Sources["server.secret_keys"].Describe())
	// Errors about the secret itself point at its _file line.
	assert.Equal(t, 11, cfg.Positions.Of("providers.tracker.notion.client_secret").Line)

	_, errs = Load(filepath.Join("testdata", "production_literal_secret.bad.yaml"), testOptions())
	require.True(t, errs.HasErrors())
	for _, literal := range []string{"0123456789abcdef0123456789abcdef-literal", "literal-upstream-token", "an-admin-token-written-in-the-file-0123", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"} {
		assert.NotContains(t, errs.Error(), literal, "a refused secret is named by its key, never printed")
	}
}

// TestSecretSourcesInDevelopment: development mode keeps accepting
// secrets written in the file, and records them as literal.
func TestSecretSourcesInDevelopment(t *testing.T) {
	t.Parallel()
	cfg, errs := Parse("dev.yaml", []byte(`server: {mode: development, admin_token: "an-admin-token-written-in-the-file-0123"}
providers:
  - name: tracker
    notion: {client_secret: "${TRACKER_NOTION_SECRET}"}
    upstream: {base_url: "https://api.tracker.example"}
    patterns:
      - {name: item, regex: '^https://tracker\.example/(?<id>\d+)$', samples: [https://tracker.example/1], attributes: [{id: title, kind: title, value: x}]}
`), testOptions())
	require.Empty(t, errs.Error())
	assert.Equal(t, SourceLiteral, cfg.Sources["server.admin_token"].Kind)
	assert.Equal(t, "written in the configuration at dev.yaml:1:42", cfg.Sources["server.admin_token"].Describe())
	assert.Equal(t, SecretSource{Kind: SourceEnv, Env: "TRACKER_NOTION_SECRET", Pos: Pos{File: "dev.yaml", Line: 4, Col: 29}}, cfg.Sources["providers.tracker.notion.client_secret"])

	filled, err := cfg.FillDevSecrets(t.TempDir())
	require.NoError(t, err)
	assert.Contains(t, filled, "server.secret_keys")
	assert.Equal(t, SourceGenerated, cfg.Sources["server.secret_keys"].Kind)
}

func TestReadSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name     string
		contents string
		want     string
		wantErr  string
	}{
		{name: "one newline dropped", contents: "s3cret\n", want: "s3cret"},
		{name: "crlf dropped", contents: "s3cret\r\n", want: "s3cret"},
		{name: "only one newline dropped", contents: "s3cret\n\n", want: "s3cret\n"},
		{name: "no newline", contents: "s3cret", want: "s3cret"},
		{name: "spaces kept", contents: " s3cret \n", want: " s3cret "},
		{name: "empty", contents: "", wantErr: "is empty"},
		{name: "newline only", contents: "\n", wantErr: "is empty"},
		{name: "too large", contents: string(make([]byte, maxSecretFileBytes+1)), wantErr: "is larger than"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(dir, string(rune('a'+i)))
			require.NoError(t, os.WriteFile(name, []byte(tc.contents), 0o600))
			got, err := readSecretFile(name)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), name)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestStorageDSN: the PostgreSQL DSN is a secret like the others: it
// comes from ${NAME} or dsn_file, and its source is recorded without its
// value (TH-49, TH-53).
func TestStorageDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, want, kind string
	}{
		{"storage_postgres.good.yaml", "postgres://unfurld:env-password@db.internal:5432/unfurld", SourceEnv},
		{"storage_dsn_file.good.yaml", "postgres://unfurld:file-password@db.internal:5432/unfurld?sslmode=verify-full", SourceFile},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, errs := Load(filepath.Join("testdata", tc.file), testOptions())
			require.Empty(t, errs.Error())
			assert.Equal(t, StoragePostgres, cfg.Storage.Driver)
			assert.Equal(t, tc.want, cfg.Storage.DSN.Reveal())
			assert.Equal(t, tc.kind, cfg.Sources["storage.dsn"].Kind)
			assert.NotContains(t, fmt.Sprint(cfg.Storage), "password")
		})
	}
}
