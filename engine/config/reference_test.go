package config

import (
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typePaths lists the yaml key paths of t in declaration order, in the
// notation of Key.Path.
func typePaths(t reflect.Type, prefix string) []string {
	var out []string
	for _, f := range structFields(t) {
		ft := t.Field(f.index).Type
		path := joinPath(prefix, f.key)
		if ft.Kind() == reflect.Slice && isRecord(ft.Elem()) {
			path += "[]"
			ft = ft.Elem()
		}
		out = append(out, path)
		if isRecord(ft) {
			out = append(out, typePaths(ft, path)...)
		}
	}
	return out
}

// TestKeysMatchConfig keeps the table and the Go types in step: every
// yaml key has exactly one entry, and every entry is a yaml key.
func TestKeysMatchConfig(t *testing.T) {
	t.Parallel()
	var got []string
	for _, k := range Keys() {
		got = append(got, k.Path)
	}
	assert.ElementsMatch(t, typePaths(reflect.TypeFor[Config](), ""), got)
}

// TestKeysDefaultsDecode checks that every default in the table decodes
// into its field's type, and that the documentation is one table cell.
func TestKeysDefaultsDecode(t *testing.T) {
	t.Parallel()
	for _, k := range Keys() {
		t.Run(k.Path, func(t *testing.T) {
			t.Parallel()
			assert.NotEmpty(t, k.Doc)
			for _, s := range []string{k.Doc, k.DefaultDoc} {
				assert.NotContains(t, s, "|", "a | would split the docs/configuration.md table")
				assert.NotContains(t, s, "\n")
			}
			if k.Default == "" {
				assert.Empty(t, k.When, "When needs a Default")
				return
			}
			ty := keyType(k.Path)
			require.NotNil(t, ty)
			v := reflect.New(ty).Elem()
			require.NoError(t, setDefault(v, k.Default))
			for _, e := range k.Enum {
				if e == k.Default {
					return
				}
			}
			assert.Empty(t, k.Enum, "the default %q is not among %v", k.Default, k.Enum)
		})
	}
}

// readmeBlock matches one generated table of docs/configuration.md.
var readmeBlock = regexp.MustCompile(`(?s)(<!-- config-reference ([^ ]+) -->\n)(.*?)(<!-- /config-reference -->)`)

// TestReadmeReference checks that docs/configuration.md, the configuration reference,
// is the one Reference generates from Keys; `go test -update` rewrites
// it.
func TestReadmeReference(t *testing.T) {
	t.Parallel()
	const readme = "../../docs/configuration.md"
	data, err := os.ReadFile(readme)
	require.NoError(t, err)
	seen := map[string]bool{}
	got := readmeBlock.ReplaceAllStringFunc(string(data), func(m string) string {
		sm := readmeBlock.FindStringSubmatch(m)
		table, ok := Reference(sm[2])
		assert.True(t, ok, "unknown block %q", sm[2])
		seen[sm[2]] = true
		return sm[1] + table + sm[4]
	})
	for name := range referenceBlocks() {
		assert.True(t, seen[name], "docs/configuration.md has no block %q", name)
	}
	if *update {
		require.NoError(t, os.WriteFile(readme, []byte(got), 0o644))
	}
	assert.Equal(t, got, string(data), "docs/configuration.md drifted from config.Keys; run go test ./engine/config -update")
}
