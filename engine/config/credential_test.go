package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCredentialShape loads the keys that shape a credential: the key
// form's fields get their defaults, operator secrets come from a file or
// the environment and stay Secrets (TH-53: never printed), and the status
// overrides are kept as written.
func TestCredentialShape(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "credential_shape.good.yaml"), testOptions())
	require.Empty(t, errs.Error())
	a := cfg.Providers[0].Upstream.Auth
	assert.Equal(t, []APIKeyField{
		{Name: "email", Label: "E-mail", Type: FieldEmail},
		{Name: "token", Label: "token", Type: FieldSecret},
	}, a.APIKey.Fields)
	assert.Equal(t, `"Basic " + base64(credential.email + ":" + credential.token + secrets.app_key)`, a.Value)
	require.Len(t, a.Secrets, 2)
	assert.Equal(t, "file-secret-0123456789abcdef-0123456789", a.Secrets["app_key"].Reveal())
	assert.Equal(t, "dev-secret", a.Secrets["other"].Reveal())
	assert.Equal(t, SourceFile, cfg.Sources["providers.tracker.upstream.auth.secrets.app_key"].Kind)
	assert.Equal(t, map[string]string{"401": StatusNotFound, "418": StatusTryLater}, cfg.Providers[0].Errors.Statuses)
	assert.NotContains(t, a.Secrets["app_key"].String(), "file-secret")
}
