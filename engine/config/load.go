package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// LoadOptions tunes Load.
type LoadOptions struct {
	// LookupEnv resolves ${NAME}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Builtins holds ready-made providers as "<name>.yaml" at its root, for `include: builtin:<name>`. May be nil.
	Builtins fs.FS
	// AllowSharedDomains skips the refusal of two providers claiming one
	// Notion domain, for harnesses that load every built-in provider at
	// once to run fixtures (builtin:github and builtin:github-oauth both
	// claim github.com). A deployment never sets it.
	AllowSharedDomains bool
}

// builtinPrefix marks an include of a provider shipped in the binary.
const builtinPrefix = "builtin:"

// maxIncludeBytes caps an included file, so that a mistyped include of a
// huge file fails instead of filling memory.
const maxIncludeBytes = 4 << 20

// Load reads, expands, checks and decodes a configuration file. It returns the config (nil only if
// nothing could be decoded) and every problem found (errors and warnings, sorted). Callers check errs.HasErrors().
func Load(path string, opts LoadOptions) (*Config, Errors) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{Pos: Pos{File: path}, Msg: fmt.Sprintf("read configuration: %v", err)}}
	}
	return Parse(path, data, opts)
}

// Parse is Load on bytes already read (name is used in positions). Includes resolve relative to filepath.Dir(name).
func Parse(name string, data []byte, opts LoadOptions) (*Config, Errors) {
	l := newLoader(name, opts)
	root := l.parseFile(name, data, "configuration")
	if root == nil {
		l.errs.Sort()
		return nil, l.errs
	}
	if root.Kind != yaml.MappingNode {
		l.errs.Add(nodePos(root, name), "", "want a mapping at the top level, got a %s", kindName(root.Kind))
		l.errs.Sort()
		return nil, l.errs
	}
	cfg := &Config{File: name}
	l.decode(root, reflect.ValueOf(cfg).Elem(), "", name, nil)
	cfg.Positions = l.pos
	cfg.Sources = l.sources
	cfg.SetDefaults()
	l.errs = append(l.errs, cfg.validate(l.broken, l.bad, opts.AllowSharedDomains)...)
	l.errs.Sort()
	return cfg, l.errs
}

// loader holds the state of one Load: the problems found so far and the
// positions index being built.
type loader struct {
	dir    string
	opts   LoadOptions
	lookup func(string) (string, bool)
	errs   Errors
	pos    Positions
	// expanded holds the scalars whose ${...} are already replaced.
	expanded map[*yaml.Node]bool
	// active holds the alias targets being walked, to stop alias cycles.
	active map[*yaml.Node]bool
	// aliasDepth > 0 while walking through an alias; aliased counts the
	// nodes walked that way (see maxAliased).
	aliasDepth int
	aliased    int
	flooded    bool
	// broken holds the indexes of providers whose include failed; they
	// are left empty and skipped by validation.
	broken map[int]bool
	// bad holds the paths whose value could not be expanded or decoded;
	// validation says nothing more about them.
	bad map[string]bool
	// fields caches structFields by type.
	fields map[reflect.Type][]field
	// fromEnv holds, per scalar, the first variable whose value went
	// into it; sources is where each secret came from (Config.Sources).
	fromEnv map[*yaml.Node]string
	// readEnv holds, per scalar, the first variable read, even when its
	// value is empty.
	readEnv map[*yaml.Node]string
	sources map[string]SecretSource
}

func newLoader(name string, opts LoadOptions) *loader {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &loader{
		dir:      filepath.Dir(name),
		opts:     opts,
		lookup:   lookup,
		pos:      Positions{},
		expanded: map[*yaml.Node]bool{},
		active:   map[*yaml.Node]bool{},
		broken:   map[int]bool{},
		bad:      map[string]bool{},
		fields:   map[reflect.Type][]field{},
		fromEnv:  map[*yaml.Node]string{},
		readEnv:  map[*yaml.Node]string{},
		sources:  map[string]SecretSource{},
	}
}

// parseFile parses one YAML document and returns its root node, or nil
// after recording why there is none. what names the file in messages.
func (l *loader) parseFile(file string, data []byte, what string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.errs = append(l.errs, syntaxError(file, data, err))
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		l.errs.Add(Pos{File: file, Line: 1, Col: 1}, "", "the %s is empty", what)
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == nullTag {
		l.errs.Add(nodePos(root, file), "", "the %s is empty", what)
		return nil
	}
	return root
}

// syntaxError turns a yaml.v3 parse error into an Error at the line yaml
// reports. yaml.v3 gives no line for problems on the first line and for
// bad bytes; for bad bytes we find the line ourselves.
func syntaxError(file string, data []byte, err error) Error {
	msg := err.Error()
	line := 0
	if rest, ok := strings.CutPrefix(msg, "yaml: "); ok {
		if n, tail, ok := cutLine(rest); ok {
			line, msg = n, "yaml: "+tail
		}
	}
	if line == 0 {
		line = badByteLine(data)
	}
	if real, ok := problemLine(data, err.Error(), line); ok {
		// yaml.v3 printed the line before the enclosing collection
		// (see syntax.go); start is that collection's first line.
		if hint := structureHint(data, strings.TrimPrefix(msg, "yaml: "), line+1, real); hint != "" {
			msg += " (" + hint + ")"
		}
		return Error{Pos: Pos{File: file, Line: real, Col: indentCol(data, real)}, Msg: msg}
	}
	return Error{Pos: Pos{File: file, Line: line, Col: 1}, Msg: msg}
}

// badByteLine returns the line of the first byte yaml's reader refuses
// (invalid UTF-8 or a control character), or 1.
func badByteLine(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && size == 1) || (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return bytes.Count(data[:i], []byte("\n")) + 1
		}
		i += size
	}
	return 1
}

// include resolves the include entry item (at path, e.g. providers[2]) and
// returns the included provider's root mapping and its file name, or nil
// after recording why it could not be read. The entry may name a variant
// (`variant: oauth`), which is laid over the included file (variant.go).
func (l *loader) include(item *yaml.Node, path, file string) (*yaml.Node, string) {
	var target, variant *yaml.Node
	var extra []string
	var firstExtra *yaml.Node
	for j := 0; j+1 < len(item.Content); j += 2 {
		k := item.Content[j]
		switch {
		case k.Value == "include" && target == nil:
			target = item.Content[j+1]
			continue
		case k.Value == "variant" && variant == nil:
			variant = item.Content[j+1]
			continue
		}
		extra = append(extra, strconv.Quote(k.Value))
		if firstExtra == nil {
			firstExtra = k
		}
	}
	if len(extra) > 0 {
		l.errs.Add(nodePos(firstExtra, file), path, "an include entry holds only include and variant; found %s", strings.Join(extra, ", "))
		return nil, ""
	}
	target = resolveAlias(target)
	if target == nil || target.Kind != yaml.ScalarNode || target.ShortTag() == nullTag {
		l.errs.Add(nodePos(item, file), path+".include", "want a file path or builtin:NAME")
		return nil, ""
	}
	l.expandNode(target, path+".include", file)
	if l.bad[path+".include"] {
		return nil, "" // a variable is missing; the path would be wrong
	}
	ref := strings.TrimSpace(target.Value)
	at := nodePos(target, file)
	if ref == "" {
		l.errs.Add(at, path+".include", "want a file path or builtin:NAME")
		return nil, ""
	}
	want := ""
	if variant = resolveAlias(variant); variant != nil {
		if variant.Kind != yaml.ScalarNode || variant.ShortTag() == nullTag || strings.TrimSpace(variant.Value) == "" {
			l.errs.Add(nodePos(variant, file), path+".variant", "want the name of a variant the included file declares")
			return nil, ""
		}
		l.expandNode(variant, path+".variant", file)
		if l.bad[path+".variant"] {
			return nil, ""
		}
		want = strings.TrimSpace(variant.Value)
	}
	incName := ref
	var data []byte
	var err error
	if name, ok := strings.CutPrefix(ref, builtinPrefix); ok {
		var implied string
		data, incName, implied, err = l.readBuiltin(name)
		if err == nil && implied != "" {
			if want != "" {
				l.errs.Add(nodePos(variant, file), path+".variant", "builtin:%s is already the %s variant of builtin:%s; include builtin:%s to choose another",
					name, implied, strings.TrimSuffix(name, "-"+implied), strings.TrimSuffix(name, "-"+implied))
				return nil, ""
			}
			want = implied
		}
	} else {
		if !filepath.IsAbs(incName) {
			incName = filepath.Join(l.dir, incName)
		}
		data, err = readInclude(incName)
	}
	if err != nil {
		l.errs.Add(at, path+".include", "%v", err)
		return nil, ""
	}
	root := l.parseFile(incName, data, "included file")
	if root == nil {
		return nil, ""
	}
	if root.Kind != yaml.MappingNode {
		l.errs.Add(nodePos(root, incName), path, "an included file holds one provider mapping, got a %s", kindName(root.Kind))
		return nil, ""
	}
	for j := 0; j+1 < len(root.Content); j += 2 {
		if k := root.Content[j]; k.Value == "include" {
			l.errs.Add(nodePos(k, incName), path, "nested includes are not supported")
			return nil, ""
		}
	}
	variantAt := at
	if variant != nil {
		variantAt = nodePos(variant, file)
	}
	return l.applyVariant(root, want, ref, variantAt, path, incName), incName
}

// readBuiltin reads NAME.yaml from the built-in providers and returns its
// bytes and its file name in messages (builtin:NAME). When there is
// no such file but NAME is BASE-VARIANT, with BASE.yaml declaring VARIANT,
// it reads BASE.yaml and returns VARIANT too: builtin:github-oauth is the
// oauth variant of builtin:github.
func (l *loader) readBuiltin(name string) (data []byte, file, variant string, err error) {
	if l.opts.Builtins == nil || !fs.ValidPath(name) || strings.Contains(name, "/") || name == "." {
		return nil, "", "", fmt.Errorf("unknown builtin provider %q", name)
	}
	data, err = fs.ReadFile(l.opts.Builtins, name+".yaml")
	if err == nil {
		return data, builtinPrefix + name, "", nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", "", fmt.Errorf("read builtin provider %q: %w", name, err)
	}
	builtins := ListBuiltins(l.opts.Builtins)
	for _, b := range builtins {
		for _, v := range b.Variants {
			if b.Name+"-"+v == name {
				data, err = fs.ReadFile(l.opts.Builtins, b.Name+".yaml")
				if err != nil {
					return nil, "", "", fmt.Errorf("read builtin provider %q: %w", b.Name, err)
				}
				return data, builtinPrefix + b.Name, v, nil
			}
		}
	}
	var names []string
	for _, b := range builtins {
		names = append(names, b.Includes()...)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, "", "", fmt.Errorf("unknown builtin provider %q", name)
	}
	return nil, "", "", fmt.Errorf("unknown builtin provider %q; known: %s", name, strings.Join(names, ", "))
}

// readInclude reads an included file. Only regular files are read, and at
// most maxIncludeBytes, so an include of /dev/zero or a fifo cannot hang
// the loader.
func readInclude(name string) ([]byte, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("included file %s does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read included file: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read included file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("included file %s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIncludeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read included file: %w", err)
	}
	if len(data) > maxIncludeBytes {
		return nil, fmt.Errorf("included file %s is larger than %d bytes", name, maxIncludeBytes)
	}
	return data, nil
}
