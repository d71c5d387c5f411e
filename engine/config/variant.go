package config

import (
	"io/fs"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file owns provider variants: one provider file describes a service
// once, and declares under `variants:` the few keys that differ for
// another way of using it (a service-wide token versus each user signing
// in). An include picks one with `variant: NAME`, or, for a built-in,
// with builtin:BASE-NAME. The variant is laid over the file before the
// provider is decoded, so strict key checking and positions work as for
// any other provider: every value, the base's and the variant's, sits in
// the same file.
//
// Merging rules: a mapping in the variant merges into the base's mapping
// key by key (recursively); anything else in the variant (a scalar, a
// list, null) replaces the base's value whole. A mapping laid over a
// scalar or list, or a scalar or list over a mapping, is refused: it is
// almost always a misplaced key.

// variantsKey is the top-level key of a provider file that declares its
// variants. It is not a Provider field: the loader takes it out before
// decoding.
const variantsKey = "variants"

// Builtin is one built-in provider file and the variants it declares.
type Builtin struct {
	// Name is the file's name without ".yaml": include it as builtin:NAME.
	Name string
	// Variants are the names under the file's variants key, sorted; each
	// is included as builtin:NAME-VARIANT.
	Variants []string
}

// Includes lists what an include can name for b: NAME, then NAME-VARIANT
// for each variant.
func (b Builtin) Includes() []string {
	out := []string{b.Name}
	for _, v := range b.Variants {
		out = append(out, b.Name+"-"+v)
	}
	return out
}

// ListBuiltins lists the provider files at the root of fsys ("<name>.yaml")
// with their variants, sorted by name. A file that does not parse is
// listed without variants; including it reports the problem.
func ListBuiltins(fsys fs.FS) []Builtin {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil
	}
	var out []Builtin
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || e.IsDir() {
			continue
		}
		b := Builtin{Name: name}
		if data, err := fs.ReadFile(fsys, e.Name()); err == nil {
			var doc yaml.Node
			if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) == 1 {
				if vs := ownValue(doc.Content[0], variantsKey); vs != nil && vs.Kind == yaml.MappingNode {
					for i := 0; i+1 < len(vs.Content); i += 2 {
						b.Variants = append(b.Variants, vs.Content[i].Value)
					}
					sort.Strings(b.Variants)
				}
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ownValue is the value of key in mapping n itself, or nil.
func ownValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Tag != mergeTag && n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// applyVariant takes the variants key out of root (the included file of
// the provider at path) and, when want names one, returns root with that
// variant laid over it. ref is what the include named and at where the
// variant was asked for, for messages. On a problem it records it and
// returns root without the variant's changes, so the rest of the provider
// is still checked.
func (l *loader) applyVariant(root *yaml.Node, want, ref string, at Pos, path, file string) *yaml.Node {
	var variants, variantsKeyNode *yaml.Node
	base := &yaml.Node{Kind: root.Kind, Tag: root.Tag, Line: root.Line, Column: root.Column, Style: root.Style}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind == yaml.ScalarNode && k.Tag != mergeTag && k.Value == variantsKey && variants == nil {
			variantsKeyNode, variants = k, resolveAlias(root.Content[i+1])
			continue
		}
		base.Content = append(base.Content, k, root.Content[i+1])
	}
	declared := map[string]*yaml.Node{}
	var names []string
	if variants != nil {
		if variants.Kind != yaml.MappingNode {
			l.errs.Add(nodePos(variantsKeyNode, file), path+"."+variantsKey, "want a mapping of variant names to the keys they change, got a %s", kindName(variants.Kind))
			return base
		}
		for i := 0; i+1 < len(variants.Content); i += 2 {
			k, v := variants.Content[i], resolveAlias(variants.Content[i+1])
			vpath := path + "." + variantsKey + "." + k.Value
			if first, dup := declared[k.Value]; dup {
				l.errs.Add(nodePos(k, file), path+"."+variantsKey, "variant %q is already defined on line %d", k.Value, first.Line)
				continue
			}
			if k.Kind != yaml.ScalarNode || !validName(k.Value) {
				l.errs.Add(nodePos(k, file), path+"."+variantsKey, "a variant name is lower-case letters, digits and '-', got %q", k.Value)
				continue
			}
			if v == nil || v.Kind != yaml.MappingNode {
				l.errs.Add(nodePos(k, file), vpath, "want a mapping of the keys the variant changes")
				continue
			}
			if ownValue(v, variantsKey) != nil || ownValue(v, "include") != nil {
				l.errs.Add(nodePos(k, file), vpath, "a variant cannot declare variants or includes")
				continue
			}
			declared[k.Value] = v
			names = append(names, k.Value)
		}
	}
	if want == "" {
		return base
	}
	over, ok := declared[want]
	if !ok {
		sort.Strings(names)
		known := "it declares none"
		if len(names) > 0 {
			known = "known: " + strings.Join(names, ", ")
		}
		l.errs.Add(at, path+".variant", "%s has no variant %q; %s", ref, want, known)
		return base
	}
	return l.overlay(base, over, path, file)
}

// validName reports whether s can name a variant: what is appended to a
// provider name (builtin:github-oauth) must keep it a valid name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// overlay returns mapping base with mapping over laid on it (the rules at
// the top of this file). Neither is changed: the nodes may be aliased
// elsewhere in the document.
func (l *loader) overlay(base, over *yaml.Node, path, file string) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: base.Tag, Line: base.Line, Column: base.Column, Style: base.Style}
	out.Content = append(out.Content, base.Content...)
	// index finds a base key in one step, so laying a large variant over
	// a large mapping stays linear. A repeated base key is indexed at its
	// first place; decoding reports the repeat.
	index := map[string]int{}
	for j := 0; j+1 < len(out.Content); j += 2 {
		if bk := out.Content[j]; bk.Kind == yaml.ScalarNode && bk.Tag != mergeTag {
			if _, dup := index[bk.Value]; !dup {
				index[bk.Value] = j
			}
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == mergeTag {
			// Merge keys and non-text keys have no base value to pair
			// with; decoding reports them as in any mapping.
			out.Content = append(out.Content, k, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.errs.Add(nodePos(k, file), path, "key %q is already defined on line %d", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		at, ok := index[k.Value]
		if !ok {
			out.Content = append(out.Content, k, v)
			continue
		}
		old, nv := resolveAlias(out.Content[at+1]), resolveAlias(v)
		kpath := joinPath(path, k.Value)
		switch {
		case nv != nil && nv.Kind == yaml.ScalarNode && nv.ShortTag() == nullTag:
			out.Content[at+1] = v // null clears the base's value
		case old != nil && nv != nil && old.Kind == yaml.MappingNode && nv.Kind == yaml.MappingNode:
			out.Content[at+1] = l.overlay(old, nv, kpath, file)
		case old != nil && nv != nil && (old.Kind == yaml.MappingNode) != (nv.Kind == yaml.MappingNode):
			l.errs.Add(nodePos(k, file), kpath, "the variant gives a %s where the base has a %s; a variant changes a value by one of the same shape",
				kindName(nv.Kind), kindName(old.Kind))
		default:
			out.Content[at+1] = v
		}
	}
	return out
}
