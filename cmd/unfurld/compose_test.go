package main

import (
	"bytes"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/providers"
)

// composeDir is the deployment to copy (issue 11 item 5).
const composeDir = "../../examples/compose/"

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]string `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Networks    yaml.Node         `yaml:"networks"`
	} `yaml:"services"`
}

// composeVar is an interpolation of compose.yaml: ${NAME}, ${NAME:-x}
// or ${NAME:?message}.
var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::[-?][^}]*)?\}`)

// TestComposeExample checks examples/compose without a Docker daemon
// (none runs on the CI machine): compose.yaml parses; its two replicas
// run the same image and configuration and give it every variable it
// reads; config.yaml passes `unfurld validate` with exactly the
// environment compose.yaml gives it; Caddy's fixed address is the one
// trusted proxy; the Caddyfile spreads requests over both replicas on
// the port they listen on; and .env.example names every variable
// compose.yaml requires.
func TestComposeExample(t *testing.T) {
	cf, raw := readCompose(t)
	db, ok := cf.Services["db"]
	require.True(t, ok, "a db service")
	assert.True(t, strings.HasPrefix(db.Image, "postgres:"), db.Image)
	dotenv := composeDotenv()

	cfgRaw, err := os.ReadFile(composeDir + "config.yaml")
	require.NoError(t, err)
	var replicas []string
	for name, svc := range cf.Services {
		if !strings.HasPrefix(name, "unfurld") {
			continue
		}
		replicas = append(replicas, name)
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, "../..", svc.Build["context"], "built from this repository's Dockerfile")
			assert.Contains(t, svc.Volumes, "./config.yaml:/etc/unfurld/config.yaml:ro")
			assert.Equal(t, []string{"serve", "--listen", ":8080"}, svc.Command)
			env := composeEnv(t, cf, name, dotenv)
			dsn, err := url.Parse(env["DATABASE_URL"])
			require.NoError(t, err)
			assert.Equal(t, "db:5432", dsn.Host, "the db service")
			for _, m := range composeVar.FindAllStringSubmatch(string(cfgRaw), -1) {
				_, ok := env[m[1]]
				assert.True(t, ok, "config.yaml reads %s, which compose.yaml does not set", m[1])
			}
			e, out, errb := testEnv(env)
			require.Equal(t, exitOK, run(t.Context(), []string{"validate", "--config", composeDir + "config.yaml"}, e), out.String()+errb.String())
		})
	}
	assert.Len(t, replicas, 2, "two replicas")

	// Caddy's fixed address is exactly the trusted proxy.
	cfg, errs := config.Parse("config.yaml", cfgRaw, config.LoadOptions{Builtins: providers.FS(), LookupEnv: func(k string) (string, bool) {
		v, ok := dotenv[k]
		if k == "DATABASE_URL" {
			return "postgres://u:p@db/unfurld", true
		}
		return v, ok
	}})
	require.False(t, errs.HasErrors(), "%v", errs)
	caddy, ok := cf.Services["caddy"]
	require.True(t, ok, "a caddy service")
	var nets map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	}
	require.NoError(t, caddy.Networks.Decode(&nets))
	addr, err := netip.ParseAddr(nets["internal"].IPv4)
	require.NoError(t, err, "caddy has a fixed address")
	require.Len(t, cfg.Server.TrustedProxies, 1)
	assert.True(t, cfg.Server.TrustedProxies[0].Prefix().Contains(addr), "server.trusted_proxies names caddy")
	assert.Equal(t, 32, cfg.Server.TrustedProxies[0].Prefix().Bits(), "and nothing else")
	assert.Equal(t, ":8080", cfg.Server.Listen)

	caddyfile, err := os.ReadFile(composeDir + "Caddyfile")
	require.NoError(t, err)
	for _, r := range replicas {
		assert.Contains(t, string(caddyfile), r+":8080", "Caddy sends requests to %s", r)
	}

	example, err := os.ReadFile(composeDir + ".env.example")
	require.NoError(t, err)
	for _, m := range composeVar.FindAllStringSubmatch(string(raw), -1) {
		assert.Contains(t, string(example), "\n"+m[1]+"=", ".env.example names %s", m[1])
	}
}

// readCompose parses compose.yaml and returns it with its text.
func readCompose(t *testing.T) (composeFile, []byte) {
	t.Helper()
	raw, err := os.ReadFile(composeDir + "compose.yaml")
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.NewDecoder(bytes.NewReader(raw)).Decode(&cf), "compose.yaml parses")
	return cf, raw
}

// composeDotenv is what .env would hold: throwaway values for every
// variable compose.yaml reads.
func composeDotenv() map[string]string {
	return map[string]string{
		"UNFURLD_DOMAIN": "unfurl.example.com", "POSTGRES_PASSWORD": "pw-0123456789",
		"UNFURLD_SECRET_KEYS":         sealing.GenerateKeySpec("k1"),
		"GITHUB_NOTION_CLIENT_SECRET": "compose-test-client-secret-0123456789", "GITHUB_NOTION_INTEGRATION_ID": "integration",
		"GITHUB_NOTION_INTEGRATION_SECRET": "compose-test-integration-secret-0123", "GITHUB_TOKEN": "",
	}
}

// composeEnv is the environment compose.yaml gives service, its
// ${...} interpolated from dotenv as compose does.
func composeEnv(t *testing.T, cf composeFile, service string, dotenv map[string]string) map[string]string {
	t.Helper()
	svc, ok := cf.Services[service]
	require.True(t, ok, "compose.yaml has a %s service", service)
	env := map[string]string{}
	for k, v := range svc.Environment {
		env[k] = composeVar.ReplaceAllStringFunc(v, func(m string) string {
			name := composeVar.FindStringSubmatch(m)[1]
			val, ok := dotenv[name]
			require.True(t, ok, "compose.yaml reads %s, which the test (and .env.example) do not know", name)
			return val
		})
	}
	return env
}
