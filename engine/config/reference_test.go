package config

import (
	"reflect"
	"strings"
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
				assert.NotContains(t, s, "|", "a | would split the README table")
				assert.NotContains(t, s, "\n")
			}
			if k.Default == "" {
				assert.Empty(t, k.When, "When needs a Default")
				return
			}
			v := reflect.New(fieldType(t, k.Path)).Elem()
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

// fieldType is the Go type of the key at path.
func fieldType(t *testing.T, path string) reflect.Type {
	t.Helper()
	ty := reflect.TypeFor[Config]()
	for seg := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(seg, "[]")
		f := fieldByKey(reflect.New(ty).Elem(), name)
		require.True(t, f.IsValid(), "no key %s in %s", name, path)
		ty = f.Type()
		if list {
			ty = ty.Elem()
		}
	}
	return ty
}
