package config

import (
	"encoding/json"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Patterns the schema checks scalars with. A value may always be a
// ${NAME} reference instead, which only the loader can expand.
const (
	envPattern      = `\$\{`
	durationPattern = `^\s*(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)\s*$|` + envPattern
	sizePattern     = `^\s*[0-9]+\s*(KiB|MiB|GiB|KB|MB|GB|B)?\s*$|` + envPattern
)

// Schema returns the JSON Schema (draft 2020-12) of a configuration
// file, generated from the Go types and Keys, so that editors complete
// keys, show their documentation and defaults, and flag unknown keys and
// wrong types while a file is written. A provider file (what `include:`
// reads) is described by "#/$defs/provider". The loader stays the
// authority: the schema cannot check expressions, patterns, or rules
// that span keys. `unfurld schema` prints it; the repository ships it as
// docs/unfurld.schema.json.
func Schema() []byte {
	keys := map[string]Key{}
	for _, k := range Keys() {
		keys[k.Path] = k
	}
	g := &schemaGen{keys: keys}
	root := g.object(reflect.TypeFor[Config](), "")
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["title"] = "unfurld configuration"
	root["description"] = "An unfurld configuration file. Every key is described in docs/configuration.md, the configuration reference."
	root["$defs"] = map[string]any{"provider": g.provider}
	out, _ := json.MarshalIndent(root, "", "  ") // maps and strings only: cannot fail
	return append(out, '\n')
}

// schemaGen builds the schema; provider is the item schema of providers,
// kept aside as a $defs entry.
type schemaGen struct {
	keys     map[string]Key
	provider map[string]any
}

// object is the schema of struct t at path: its keys, and the _file
// form of each secret.
func (g *schemaGen) object(t reflect.Type, path string) map[string]any {
	props := map[string]any{}
	for _, f := range structFields(t) {
		ft := t.Field(f.index).Type
		p := joinPath(path, f.key)
		props[f.key] = g.value(ft, p)
		if ft == secretType() {
			props[f.key+secretFileSuffix] = map[string]any{
				"type":        "string",
				"description": "read `" + f.key + "` from this file instead (its contents less one trailing newline); relative to the YAML file",
			}
		}
	}
	return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
}

// value is the schema of a key of type t at path, with its
// documentation and default from Keys.
func (g *schemaGen) value(t reflect.Type, path string) map[string]any {
	var s map[string]any
	switch {
	case t.Kind() == reflect.Slice && isRecord(t.Elem()):
		item := g.object(t.Elem(), path+"[]")
		if path == "providers" {
			// Not Provider fields: the loader reads them before decoding
			// (variant.go), so the table of keys does not list them.
			props := item["properties"].(map[string]any)
			props["variant"] = map[string]any{"type": "string", "description": "with `include`: the variant of the included file to use (`builtin:NAME-VARIANT` names one too)"}
			props[variantsKey] = map[string]any{
				"type":                 "object",
				"description":          "in a provider file: named variants, each the few keys that differ, laid over the file when an include names it",
				"additionalProperties": map[string]any{"$ref": "#/$defs/provider"},
			}
			g.provider = item
			item = map[string]any{"$ref": "#/$defs/provider"}
		}
		s = map[string]any{"type": "array", "items": item}
	case isRecord(t):
		s = g.object(t, path)
	default:
		s = scalarSchema(t)
	}
	// An empty value (`key:`, or null) leaves a key unset, and a variant
	// removes a key of its base with null: null is valid everywhere.
	switch ty := s["type"].(type) {
	case string:
		s["type"] = []string{ty, "null"}
	case []string:
		s["type"] = append(ty, "null")
	}
	k, ok := g.keys[path]
	if !ok {
		k = g.keys[path+"[]"] // a list of mappings
	}
	if k.Doc != "" {
		s["description"] = describe(k)
	}
	if k.Default != "" && k.When == "" {
		if v, ok := defaultJSON(t, k.Default); ok {
			s["default"] = v
		}
	}
	if len(k.Enum) > 0 {
		s["anyOf"] = []any{map[string]any{"enum": k.Enum}, map[string]any{"type": "string", "pattern": envPattern}, map[string]any{"type": "null"}}
	}
	return s
}

// describe is a key's documentation with its default, as an editor shows
// it on hover.
func describe(k Key) string {
	d := k.Doc
	switch {
	case k.DefaultDoc != "":
		d += ". Default: " + k.DefaultDoc
	case k.Default != "" && k.When != "":
		d += ". Default " + k.When + ": " + k.Default
	}
	return d
}

// scalarSchema is the schema of a value of type t that is not a mapping.
func scalarSchema(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[Duration]():
		return map[string]any{"type": []string{"string", "integer"}, "pattern": durationPattern}
	case reflect.TypeFor[ByteSize]():
		return map[string]any{"type": []string{"integer", "string"}, "pattern": sizePattern}
	case reflect.TypeFor[CIDR](), secretType():
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": []string{"integer", "string"}, "pattern": envPattern}
	case reflect.Bool:
		return map[string]any{"type": []string{"boolean", "string"}, "pattern": envPattern}
	case reflect.Pointer:
		return scalarSchema(t.Elem())
	case reflect.Slice:
		return map[string]any{"type": "array", "items": scalarSchema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": scalarSchema(t.Elem())}
	default:
		return map[string]any{} // free-form (a request body)
	}
}

// defaultJSON is def, written as YAML, as the JSON value a file would
// hold: strings stay strings, numbers and booleans and lists decode.
func defaultJSON(t reflect.Type, def string) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Bool, reflect.Slice:
		if t == reflect.TypeFor[ByteSize]() || t == reflect.TypeFor[Duration]() {
			return def, true
		}
		var v any
		if err := yaml.Unmarshal([]byte(def), &v); err != nil {
			return nil, false
		}
		return v, true
	default:
		return def, true
	}
}
