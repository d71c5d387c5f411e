package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
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

	// Printed, logged or encoded, the auth block shows no secret.
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("auth", "auth", a, "secrets", a.Secrets)
	js, err := json.Marshal(a)
	require.NoError(t, err)
	for _, out := range []string{logged.String(), string(js), fmt.Sprintf("%v %+v", a, a.Secrets)} {
		assert.NotContains(t, out, "file-secret")
		assert.NotContains(t, out, "dev-secret")
	}
}
