package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file decodes the yaml.Node tree into the Go structs by reflection,
// one field at a time, while it records positions, expands ${ENV} and
// reports unknown and duplicate keys.
//
// Why not yaml.v3's own strict decoding: KnownFields exists only on
// yaml.Decoder, Node.Decode has no strict mode, and yaml's messages carry
// a line but no column and no path. Decoding whole structs with one
// Node.Decode also stops at the first error an UnmarshalYAML method
// returns (Duration, ByteSize), hiding the problems after it. So the walk
// below matches keys against the yaml tags itself and calls Node.Decode
// only on leaves (scalars, Duration, ByteSize, `any`), where an error
// belongs to exactly one node: its position and path are known.

const (
	nullTag  = "!!null"
	strTag   = "!!str"
	mergeTag = "!!merge"
)

// maxAliased bounds the nodes walked through aliases and merge keys, so
// that a "billion laughs" document fails instead of running for ever.
const maxAliased = 100_000

// nodePos is where n stands in file.
func nodePos(n *yaml.Node, file string) Pos {
	return Pos{
		File:  file,
		Line:  n.Line,
		Col:   n.Column,
		Block: n.Kind == yaml.ScalarNode && n.Style&yaml.LiteralStyle != 0,
	}
}

// resolveAlias follows an alias to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// visit enters node n (following an alias), records its position under
// path, expands it when it is a scalar, and calls fn on it. key is the
// mapping key n is the value of, or nil for list items and the root.
func (l *loader) visit(n *yaml.Node, path, file string, key *yaml.Node, fn func(*yaml.Node)) {
	if n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil {
			return
		}
		if l.active[t] {
			l.errs.Add(nodePos(n, file), path, "alias *%s refers to itself", n.Value)
			return
		}
		l.active[t] = true
		l.aliasDepth++
		defer func() {
			delete(l.active, t)
			l.aliasDepth--
		}()
		n = t
	}
	if l.aliasDepth > 0 && !l.spendAlias(1, n, path, file) {
		return
	}
	p := nodePos(n, file)
	// Collections are placed at their key, scalars at their value (an
	// empty value has no place of its own, so it takes the key's too).
	empty := n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0
	if key != nil && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode || empty) {
		p = nodePos(key, file)
	}
	l.pos[path] = p
	if n.Kind == yaml.ScalarNode {
		l.expandNode(n, path, file)
	}
	fn(n)
}

// spendAlias counts k nodes reached through aliases or merges and reports
// false, once with an error, when the budget is spent.
func (l *loader) spendAlias(k int, n *yaml.Node, path, file string) bool {
	l.aliased += k
	if l.aliased <= maxAliased {
		return true
	}
	if !l.flooded {
		l.flooded = true
		l.errs.Add(nodePos(n, file), path, "the document expands too many aliases")
	}
	return false
}

// decode walks n into v, which must be addressable.
func (l *loader) decode(n *yaml.Node, v reflect.Value, path, file string, key *yaml.Node) {
	l.visit(n, path, file, key, func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag {
			l.noteEnv(n, path, file)
			return // an empty value leaves the field at its zero value
		}
		t := v.Type()
		switch {
		case t == secretType():
			l.decodeLeaf(n, v, path, file)
			l.noteSecret(n, v, path, file)
		case t.Kind() == reflect.Interface:
			// Free-form values (Request.Body) have no schema to check
			// keys against; they still get positions and ${ENV}.
			if l.walkAny(n, path, file) && !l.flooded {
				l.decodeLeaf(n, v, path, file)
			}
		case reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()):
			l.decodeLeaf(n, v, path, file)
		case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
			l.decodeStruct(n, v, path, file)
		case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && n.Kind == yaml.MappingNode:
			l.decodeMap(n, v, path, file)
		case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
			l.decodeSlice(n, v, path, file)
		default:
			// Scalars, and kind mismatches such as a list where a mapping
			// belongs: yaml's own message says what was expected.
			l.decodeLeaf(n, v, path, file)
		}
	})
}

// field is one yaml key of a struct.
type field struct {
	key   string
	index int
}

// structFields lists the yaml keys of struct type t in declaration order,
// skipping `yaml:"-"` and unexported fields.
func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's rule for untagged fields
		}
		out = append(out, field{key: name, index: i})
	}
	return out
}

func (l *loader) decodeStruct(n *yaml.Node, v reflect.Value, path, file string) {
	fields, ok := l.fields[v.Type()]
	if !ok {
		fields = structFields(v.Type())
		l.fields[v.Type()] = fields
	}
	pairs := l.pairs(n, path, file)
	for _, p := range pairs {
		idx := fieldIndex(fields, p.key.Value)
		if idx < 0 {
			if sf := l.secretFileField(v, fields, p.key.Value); sf >= 0 {
				l.decodeSecretFile(p, pairs, v.Field(sf), path, file)
				continue
			}
			l.unknownKey(p.key, fields, path, file)
			continue
		}
		l.decode(p.val, v.Field(idx), joinPath(path, p.key.Value), file, p.key)
	}
}

// fieldIndex is the index of the field whose yaml key is key, or -1.
func fieldIndex(fields []field, key string) int {
	for _, f := range fields {
		if f.key == key {
			return f.index
		}
	}
	return -1
}

func (l *loader) decodeMap(n *yaml.Node, v reflect.Value, path, file string) {
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	pairs := l.pairs(n, path, file)
	for _, p := range pairs {
		elem := reflect.New(t.Elem()).Elem()
		if base, ok := strings.CutSuffix(p.key.Value, secretFileSuffix); ok && base != "" && t.Elem() == secretType() {
			// A map of secrets (upstream.auth.secrets) takes the same
			// <name>_file form as a secret field.
			l.decodeSecretFile(p, pairs, elem, path, file)
			if elem.String() != "" {
				v.SetMapIndex(reflect.ValueOf(base).Convert(t.Key()), elem)
			}
			continue
		}
		l.decode(p.val, elem, joinPath(path, p.key.Value), file, p.key)
		v.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), elem)
	}
}

func (l *loader) decodeSlice(n *yaml.Node, v reflect.Value, path, file string) {
	t := v.Type()
	items := n.Content
	files := make([]string, len(items))
	for i := range files {
		files[i] = file
	}
	if t.Elem() == reflect.TypeFor[Provider]() {
		items = l.includes(n, path, file, files)
	}
	names := make([]string, len(items))
	if nf := nameField(t.Elem()); nf != "" {
		for i, it := range items {
			names[i] = l.itemName(it, nf, fmt.Sprintf("%s[%d].%s", path, i, nf), files[i])
		}
	}
	paths := itemPaths(path, names)
	s := reflect.MakeSlice(t, len(items), len(items))
	for i, it := range items {
		if it == nil {
			l.pos[paths[i]] = nodePos(n.Content[i], file)
			continue
		}
		l.decode(it, s.Index(i), paths[i], files[i], nil)
	}
	v.Set(s)
}

// includes replaces the include entries of the providers list n by the
// root mappings of the files they name, and sets files[i] to the file each
// item comes from. Entries that cannot be included become nil and are
// marked broken.
func (l *loader) includes(n *yaml.Node, path, file string, files []string) []*yaml.Node {
	items := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		items[i] = it
		m := resolveAlias(it)
		if m == nil || m.Kind != yaml.MappingNode || !hasOwnKey(m, "include") {
			continue
		}
		root, incFile := l.include(m, fmt.Sprintf("%s[%d]", path, i), file)
		if root == nil {
			items[i] = nil
			l.broken[i] = true
			continue
		}
		items[i], files[i] = root, incFile
	}
	return items
}

// hasOwnKey reports whether mapping n itself (not a merge) has key.
func hasOwnKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolveAlias(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Tag != mergeTag && k.Value == key {
			return true
		}
	}
	return false
}

// nameField is the key whose value names the items of a list of t: "id"
// for attributes, "name" for providers, patterns and requests, "" for
// lists of plain values.
func nameField(t reflect.Type) string {
	if t.Kind() != reflect.Struct {
		return ""
	}
	found := ""
	for _, f := range structFields(t) {
		switch f.key {
		case "id":
			return "id"
		case "name":
			found = "name"
		}
	}
	return found
}

// itemName is the expanded text of key nf in list item n, or "" when it
// has none (or a value that is not a plain scalar).
func (l *loader) itemName(n *yaml.Node, nf, path, file string) string {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	v := resolveAlias(l.lookupKey(n, nf, 0))
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	l.expandNode(v, path, file)
	if v.ShortTag() == nullTag {
		return ""
	}
	return v.Value
}

// itemPaths gives each list item its path: prefix.NAME when the item has
// a name (or id) no earlier item has, else prefix[i]. A duplicate thus
// keeps a path of its own, and errors about it point at it, not at the
// first item of that name. The validator uses the same rule on the decoded
// values, so both agree on every path.
func itemPaths(prefix string, names []string) []string {
	out := make([]string, len(names))
	seen := map[string]bool{}
	for i, name := range names {
		if name != "" && !seen[name] {
			seen[name] = true
			out[i] = joinPath(prefix, name)
			continue
		}
		out[i] = prefix + "[" + strconv.Itoa(i) + "]"
	}
	return out
}

// joinPath appends a mapping key to a dotted path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pair is one key and value of a mapping.
type pair struct {
	key, val *yaml.Node
}

// pairs lists the entries of mapping n in the order they apply: entries
// merged in with `<<` first, so that the mapping's own keys override them,
// then its own keys. A repeated own key is reported and dropped.
func (l *loader) pairs(n *yaml.Node, path, file string) []pair {
	var merged, own []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.Tag == mergeTag {
			merged = append(merged, l.mergePairs(v, path, file)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.errs.Add(nodePos(k, file), path, "keys must be text, got a %s", kindName(k.Kind))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.errs.Add(nodePos(k, file), path, "key %q is already defined on line %d", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	return append(merged, own...)
}

// mergePairs returns the entries a `<<` value brings in: one mapping or a
// list of them, where earlier mappings win (YAML merge-key rules).
func (l *loader) mergePairs(v *yaml.Node, path, file string) []pair {
	if v.Kind == yaml.SequenceNode {
		var out []pair
		for i := len(v.Content) - 1; i >= 0; i-- {
			out = append(out, l.mergePairs(v.Content[i], path, file)...)
		}
		return out
	}
	t := resolveAlias(v)
	if t == nil || t.Kind != yaml.MappingNode {
		l.errs.Add(nodePos(v, file), path, "<< merges mappings only")
		return nil
	}
	if l.active[t] {
		l.errs.Add(nodePos(v, file), path, "merge refers to itself")
		return nil
	}
	if !l.spendAlias(len(t.Content)/2, v, path, file) {
		return nil
	}
	l.active[t] = true
	defer delete(l.active, t)
	return l.pairs(t, path, file)
}

// lookupKey returns the value of key in mapping n, looking into `<<`
// merges the same way pairs applies them, or nil.
func (l *loader) lookupKey(n *yaml.Node, key string, depth int) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode || depth > 16 {
		return nil
	}
	var sources []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolveAlias(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			continue
		}
		if k.Tag == mergeTag {
			if v := n.Content[i+1]; v.Kind == yaml.SequenceNode {
				sources = append(sources, v.Content...)
			} else {
				sources = append(sources, v)
			}
			continue
		}
		if k.Value == key {
			return n.Content[i+1]
		}
	}
	for _, s := range sources {
		if v := l.lookupKey(resolveAlias(s), key, depth+1); v != nil {
			return v
		}
	}
	return nil
}

// unknownKey reports key k, which no field of the struct at path has, with
// a suggestion when a known key is close.
func (l *loader) unknownKey(k *yaml.Node, fields []field, path, file string) {
	best, bestDist := "", 3
	for _, f := range fields {
		if d := editDistance(k.Value, f.key); d < bestDist && d < len(k.Value) {
			best, bestDist = f.key, d
		}
	}
	if best != "" {
		l.errs.Add(nodePos(k, file), path, "unknown key %q (did you mean %q?)", k.Value, best)
		return
	}
	l.errs.Add(nodePos(k, file), path, "unknown key %q", k.Value)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// walkAny walks the children of a free-form value: positions, ${ENV} and
// duplicate keys (which yaml would report without a column). It reports
// false when it found a problem, so the value is not decoded.
func (l *loader) walkAny(n *yaml.Node, path, file string) bool {
	ok := true
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolveAlias(n.Content[i]), n.Content[i+1]
			if k == nil {
				continue
			}
			if k.Kind == yaml.ScalarNode && k.Tag == mergeTag {
				ok = l.walkMerge(v, path, file) && ok
				continue
			}
			if k.Kind == yaml.ScalarNode {
				if first, dup := seen[k.Value]; dup {
					l.errs.Add(nodePos(k, file), path, "key %q is already defined on line %d", k.Value, first.Line)
					ok = false
					continue
				}
				seen[k.Value] = k
			}
			l.visit(v, joinPath(path, k.Value), file, k, func(m *yaml.Node) { ok = l.walkAny(m, joinPath(path, k.Value), file) && ok })
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			l.visit(it, p, file, nil, func(m *yaml.Node) { ok = l.walkAny(m, p, file) && ok })
		}
	}
	return ok
}

// walkMerge walks the mappings a `<<` brings into a free-form value.
func (l *loader) walkMerge(v *yaml.Node, path, file string) bool {
	if v.Kind == yaml.SequenceNode {
		ok := true
		for _, it := range v.Content {
			ok = l.walkMerge(it, path, file) && ok
		}
		return ok
	}
	t := resolveAlias(v)
	if t == nil || l.active[t] || !l.spendAlias(len(t.Content)/2, v, path, file) {
		return true // yaml's decoder reports cycles and bad merges itself
	}
	l.active[t] = true
	defer delete(l.active, t)
	return l.walkAny(t, path, file)
}

// decodeLeaf decodes n into v with yaml.v3 and records its errors at n.
func (l *loader) decodeLeaf(n *yaml.Node, v reflect.Value, path, file string) {
	if l.flooded {
		return // yaml.v3 would expand the same aliases again
	}
	env := l.noteEnv(n, path, file)
	err := n.Decode(v.Addr().Interface())
	if err == nil {
		return
	}
	l.bad[path] = true
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// Errors from UnmarshalYAML methods (Duration, ByteSize) come
		// back as they were returned, without a line.
		l.errs.Add(nodePos(n, file), path, "%s%s", err.Error(), envHint(env))
		return
	}
	for _, msg := range te.Errors {
		at, atPath := n, path
		if line, rest, ok := cutLine(msg); ok {
			msg = rest
			if line != n.Line {
				at, atPath = locateLine(n, path, line, 0)
			}
		}
		l.errs.Add(nodePos(at, file), atPath, "%s%s", msg, envHint(env))
	}
}

// noteEnv records in Config.Sources the environment variable that fed the
// scalar n at path, if any, and returns its name: hints name the
// variable actually read.
func (l *loader) noteEnv(n *yaml.Node, path, file string) string {
	env, ok := l.fromEnv[n]
	if !ok {
		env, ok = l.readEnv[n]
	}
	if ok {
		l.sources[path] = SecretSource{Kind: SourceEnv, Env: env, Pos: nodePos(n, file)}
	}
	return env
}

// envHint names the environment variable a bad value came from: the
// position shows the ${NAME} reference, not the value that failed.
func envHint(env string) string {
	if env == "" {
		return ""
	}
	return " (the value is from the environment variable " + env + ")"
}

// cutLine splits yaml's "line N: message" into N and message.
func cutLine(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg, false
	}
	num, rest, ok := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 0, msg, false
	}
	return line, rest, true
}

// locateLine finds the first node on line inside n (yaml's messages give
// only a line) and its path; n itself when none is found.
func locateLine(n *yaml.Node, path string, line, depth int) (*yaml.Node, string) {
	if n.Line == line || depth > 64 {
		return n, path
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if k.Line == line {
				return k, path
			}
			if at, atPath := locateLine(v, p, line, depth+1); at != v || v.Line == line {
				return at, atPath
			}
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			if at, atPath := locateLine(it, p, line, depth+1); at != it || it.Line == line {
				return at, atPath
			}
		}
	}
	return n, path
}
