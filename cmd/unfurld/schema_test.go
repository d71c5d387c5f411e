package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/providers"
)

const shippedSchema = "../../docs/unfurld.schema.json"

// TestShippedSchemaIsGenerated checks that docs/unfurld.schema.json is
// what `unfurld schema` prints; regenerate it with
// `go run ./cmd/unfurld schema > docs/unfurld.schema.json`.
func TestShippedSchemaIsGenerated(t *testing.T) {
	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"schema"}, e), errb.String())
	shipped, err := os.ReadFile(shippedSchema)
	require.NoError(t, err)
	assert.Equal(t, string(shipped), out.String(), "docs/unfurld.schema.json is stale: go run ./cmd/unfurld schema > docs/unfurld.schema.json")
	assert.True(t, json.Valid(out.Bytes()))
}

// compileSchema compiles the generated schema, whole or at a fragment
// such as "#/$defs/provider".
func compileSchema(t *testing.T, fragment string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(config.Schema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("unfurld.schema.json", doc))
	sch, err := c.Compile("unfurld.schema.json" + fragment)
	require.NoError(t, err)
	return sch
}

// yamlInstance reads YAML as the JSON value an editor's language server
// validates: anchors and merge keys resolved, timestamps as text.
func yamlInstance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal(data, &v))
	raw, err := json.Marshal(plainJSON(v))
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	require.NoError(t, err)
	return inst
}

// plainJSON turns what yaml.v3 decodes into JSON values.
func plainJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = plainJSON(e)
		}
		return x
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[fmt.Sprint(k)] = plainJSON(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = plainJSON(e)
		}
		return x
	case time.Time:
		return x.Format(time.DateOnly)
	default:
		return v
	}
}

// TestShippedConfigsMatchSchema validates every configuration the
// repository ships against the schema: config.example.yaml and the
// examples (which must carry the modeline that points editors at it),
// the config loader's good fixtures, and each built-in provider as a
// provider document.
func TestShippedConfigsMatchSchema(t *testing.T) {
	whole := compileSchema(t, "")
	files, err := filepath.Glob("../../examples/*/config.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	files = append(files, "../../config.example.yaml")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			rel, err := filepath.Rel(filepath.Dir(f), shippedSchema)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(data), "# yaml-language-server: $schema="+filepath.ToSlash(rel)+"\n"),
				"the first line points editors at the schema")
			assert.NoError(t, whole.Validate(yamlInstance(t, data)))
		})
	}
	goods, err := filepath.Glob("../../engine/config/testdata/*.good.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, goods)
	for _, f := range goods {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.NoError(t, whole.Validate(yamlInstance(t, data)))
		})
	}
	provider := compileSchema(t, "#/$defs/provider")
	builtins, err := fs.Glob(providers.FS(), "*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, builtins)
	for _, name := range builtins {
		t.Run("builtin:"+name, func(t *testing.T) {
			data, err := fs.ReadFile(providers.FS(), name)
			require.NoError(t, err)
			assert.NoError(t, provider.Validate(yamlInstance(t, data)))
		})
	}
}

// TestSchemaRefuses checks that the schema is not vacuous: the mistakes
// an editor should flag while typing are refused.
func TestSchemaRefuses(t *testing.T) {
	whole := compileSchema(t, "")
	tests := []struct {
		name, yml string
		ok        bool
	}{
		{name: "minimal", yml: "server: {mode: development}\nproviders: [{include: builtin:github}]", ok: true},
		{name: "env references", yml: "server: {max_connections: '${N}', mode: '${MODE}', read_timeout: '${T}'}", ok: true},
		{name: "secret from a file", yml: "server: {secret_keys_file: /run/secrets/keys}", ok: true},
		{name: "unknown key", yml: "server: {listne: ':80'}"},
		{name: "unknown top-level key", yml: "servre: {}"},
		{name: "bad duration", yml: "server: {read_timeout: 5 seconds}"},
		{name: "bad size", yml: "server: {max_header_bytes: 16 kilobytes}"},
		{name: "bad enum", yml: "server: {mode: staging}"},
		{name: "wrong type", yml: "server: {max_connections: [1]}"},
		{name: "unknown provider key", yml: "providers: [{name: a, upstrem: {}}]"},
		{name: "unknown attribute kind", yml: "providers: [{name: a, patterns: [{attributes: [{id: t, kind: headline}]}]}]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := whole.Validate(yamlInstance(t, []byte(tc.yml)))
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
