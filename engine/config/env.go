package config

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// expandEnv replaces the ${...} references of s. It returns the new text,
// the names of the variables that are unset and have no default (each once,
// in order of appearance), the malformed references, and the names of the
// variables whose non-empty value went into the text (from), so that a
// secret can say where it came from (SecretSource), and the names of every
// variable referenced, set or not (read), so that a message about an
// empty value can name the variable.
//
// Syntax, after redpanda-data/benthos internal/config/env_vars.go:
//   - ${NAME} is the variable's value; unset is an error, set to "" is "".
//   - ${NAME:-default} uses default when NAME is unset or empty.
//   - $${ is a literal ${.
//   - any other $ is literal, so regexes ending in $ and the $<group>
//     placeholders of protocol 9.2 pass through untouched.
func expandEnv(s string, lookup func(string) (string, bool)) (out string, missing, bad, from, read []string) {
	if !strings.Contains(s, "${") {
		return s, nil, nil, nil, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				bad = append(bad, "unterminated ${ (write $${ for a literal ${)")
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			ref := s[i+2 : i+2+end]
			i += 3 + end
			name, def, hasDef := strings.Cut(ref, ":-")
			if !isEnvName(name) {
				bad = append(bad, fmt.Sprintf("bad reference ${%s}: want ${NAME} or ${NAME:-default} (write $${ for a literal ${)", ref))
				continue
			}
			v, ok := lookup(name)
			if !slices.Contains(read, name) {
				read = append(read, name)
			}
			switch {
			case hasDef && v == "":
				v = def
			case !ok && !slices.Contains(missing, name):
				missing = append(missing, name)
			case v != "" && !slices.Contains(from, name):
				from = append(from, name)
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), missing, bad, from, read
}

// isEnvName reports whether s is a POSIX-style variable name.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expandNode expands the references of one scalar value in place and
// reports missing variables at the scalar's position. Each node is expanded
// once, even when aliases reach it again, because expanding "$${" twice
// would change its meaning.
func (l *loader) expandNode(n *yaml.Node, path, file string) {
	if n.Kind != yaml.ScalarNode || l.expanded[n] {
		return
	}
	l.expanded[n] = true
	out, missing, bad, from, read := expandEnv(n.Value, l.lookup)
	if len(from) > 0 {
		l.fromEnv[n] = from[0]
	}
	if len(read) > 0 {
		l.readEnv[n] = read[0]
	}
	pos := nodePos(n, file)
	if len(missing)+len(bad) > 0 {
		l.bad[path] = true
	}
	for _, name := range missing {
		l.errs.Add(pos, path, "environment variable %s is not set", name)
	}
	for _, msg := range bad {
		l.errs.Add(pos, path, "%s", msg)
	}
	if out == n.Value {
		return
	}
	n.Value = out
	// A plain scalar is typed by its text, so `port: ${PORT}` must decode
	// as the number the variable holds: clear the tag for yaml to resolve
	// it again. An empty plain value then reads as null, which leaves the
	// field at its default. Quoted and block scalars stay strings, as
	// written; so does a non-empty value that would read as null ("~"), so
	// that a secret is never silently dropped.
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return
	}
	n.Tag = ""
	if out != "" && n.ShortTag() == nullTag {
		n.Tag = strTag
	}
}
