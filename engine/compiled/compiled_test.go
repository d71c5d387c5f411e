package compiled_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
)

const goodConfig = `
server:
  mode: development
providers:
  - name: wiki
    upstream:
      base_url: http://127.0.0.1:1/wiki
      allow_private_networks: true
    patterns:
      - name: page
        regex: '^https://wiki\.example\.com/pages/(?<slug>[a-z-]{1,40})$'
        samples: [https://wiki.example.com/pages/home]
        requests:
          - {name: page, url: "/pages/{slug}"}
        attributes:
          - {id: title, kind: title, path: title}
`

func noEnv(string) (string, bool) { return "", false }

// TestLoad checks that the one entry point refuses what each stage
// refuses, decoding, compiling and the start-up checks alike, naming
// file:line:col, and that a refused file compiles nothing (TH-53).
func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(string) string
		// want is a fragment of the first error; "" means the file loads.
		want string
	}{
		{name: "good", edit: func(s string) string { return s }},
		{
			name: "decode error",
			edit: func(s string) string {
				return strings.Replace(s, "mode: development", "mode: development\n  listne: x", 1)
			},
			want: `config.yaml:4:3: server: unknown key "listne"`,
		},
		{
			name: "compile error",
			edit: func(s string) string { return strings.Replace(s, "path: title", "expr: nosuch.field", 1) },
			want: "config.yaml:16:44: providers.wiki.patterns.page.attributes.title.expr: unknown name nosuch",
		},
		{
			name: "start-up check",
			edit: func(s string) string {
				return strings.Replace(s, "mode: development", "mode: development\n  secret_keys: \"k1:notbase64\"", 1)
			},
			want: "config.yaml:4:16: server.secret_keys",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.edit(goodConfig)), 0o600))
			c, errs := compiled.Load(path, compiled.Options{LookupEnv: noEnv})
			if tc.want == "" {
				require.NotNil(t, c, "%v", errs)
				t.Cleanup(c.Registry.Close)
				_, ok := c.Registry.Get("wiki")
				assert.True(t, ok)
				assert.Equal(t, path, c.Config.File)
				return
			}
			assert.Nil(t, c)
			require.True(t, errs.HasErrors())
			assert.Contains(t, errs[0].Error(), filepath.Dir(path))
			assert.Contains(t, errs.Error(), tc.want)
		})
	}
}
