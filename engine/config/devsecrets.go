package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevSecretsFile is the file, beside the bbolt file, that keeps generated
// development secrets so they survive restarts.
const DevSecretsFile = "dev-secrets.json"

// FillDevSecrets gives every empty secret a generated value in
// development mode, so `unfurld --config config.example.yaml` starts on a
// fresh machine with nothing exported. Generated values are kept in
// dir/dev-secrets.json (mode 0600) and reused on the next start. It
// returns the config paths it filled, for a loud warning. In production
// mode it does nothing: validation has refused empty secrets already
// (TH-53).
//
// Unlike validation this touches the disk, which is why it is a separate
// step that cmd/unfurld calls after loading.
func (c *Config) FillDevSecrets(dir string) ([]string, error) {
	if c.Server.Mode != ModeDevelopment {
		return nil, nil
	}
	path := filepath.Join(dir, DevSecretsFile)
	kept := map[string]string{}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(raw, &kept); err != nil {
			return nil, fmt.Errorf("read %s: not the JSON object unfurld writes: %w", path, err)
		}
	}
	var filled []string
	changed := false
	if c.Sources == nil {
		c.Sources = map[string]SecretSource{}
	}
	fill := func(key string, s *Secret) {
		if !s.IsZero() {
			return
		}
		v, ok := kept[key]
		if !ok {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			v = base64.RawURLEncoding.EncodeToString(b)
			kept[key] = v
			changed = true
		}
		*s = Secret(v)
		c.Sources[key] = SecretSource{Kind: SourceGenerated, File: path}
		filled = append(filled, key)
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		fill("providers."+p.Name+".notion.client_secret", &p.Notion.ClientSecret)
	}
	fill("server.admin_token", &c.Server.AdminToken)
	// The keyring spec is "id:base64(32 bytes)"; the generated value is
	// already 32 random bytes in base64, so only the id is added.
	if c.Server.SecretKeys.IsZero() {
		fill("server.secret_keys", &c.Server.SecretKeys)
		c.Server.SecretKeys = Secret("dev:" + c.Server.SecretKeys.Reveal())
	}
	if changed {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		out, _ := json.MarshalIndent(kept, "", "  ")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return filled, nil
}
