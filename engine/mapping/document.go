package mapping

import (
	"errors"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// MaxDepth is how deeply a response may nest arrays and objects. Real APIs
// stay far below it; a deeper body is hostile (TH-32) and would make
// gjson's recursive reads and our recursive conversion costly.
const MaxDepth = 128

// Doc is one upstream JSON response, read lazily with gjson paths: only the
// values an expression reads are ever decoded. The zero Doc is an empty
// response (a missing optional request); every read from it gives nil.
type Doc struct {
	// json is kept as a string because gjson works on strings without
	// copying; NewDoc pays the one copy from the body bytes.
	json string
	// top holds the top-level members of an object document, sorted by
	// key, so that a path starting with a plain key goes straight to its
	// value: gjson scans a document from its start on every read, and a
	// mapping of seven attributes read a 6 KB body seven times (issue 2).
	// nil for documents scan does not index.
	top []member
}

// NewDoc wraps a JSON body. It reports an error when body is not valid JSON
// or nests deeper than MaxDepth (TH-32), so that later reads never meet a
// malformed document. The document keeps its own copy of body.
func NewDoc(body []byte) (Doc, error) {
	return ParseDoc(string(body))
}

// ParseDoc is NewDoc for a body held as a string, which needs no copy:
// upstream answers arrive as strings (issue 11).
func ParseDoc(json string) (Doc, error) {
	if len(json) == 0 {
		return Doc{}, errors.New("response body is empty")
	}
	// One pass checks validity and depth and finds the top-level
	// members; it is iterative, so hostile nesting costs no recursion.
	top, err := scan(json)
	if err != nil {
		return Doc{}, err
	}
	return Doc{json: json, top: top}, nil
}

// plainHead splits a path whose first component is a plain key (letters,
// digits, '_' and '-') from the rest after its dot. Any other first
// component (escapes, wildcards, '#', modifiers, multipaths, pipes) has
// meaning of its own in gjson's syntax, and such paths are read whole.
// The rest must start like a key or an array count ('#'), because some
// syntax means something else at the start of a path than after a dot
// ("!0" is a literal only at the start), and the rest is read as a path
// of its own.
func plainHead(path string) (key, rest string, ok bool) {
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case plainKeyByte(c):
		case c == '.' && i > 0 && i+1 < len(path) && (plainKeyByte(path[i+1]) || path[i+1] == '#'):
			return path[:i], path[i+1:], true
		default:
			return "", "", false
		}
	}
	return path, "", path != ""
}

func plainKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// IsZero reports whether d is the empty response.
func (d Doc) IsZero() bool { return d.json == "" }

// Get reads a gjson path (https://github.com/tidwall/gjson/blob/master/SYNTAX.md):
// a JSON string gives a string, a number float64, true/false bool, null or
// a missing value nil, an array []any and an object map[string]any
// (converted recursively). The empty path reads the whole document.
func (d Doc) Get(path string) any {
	return toValue(d.result(path))
}

// result runs the gjson query; the empty path means the whole document.
func (d Doc) result(path string) gjson.Result {
	if d.json == "" {
		return gjson.Result{}
	}
	if path == "" {
		return gjson.Parse(d.json)
	}
	if d.top != nil {
		if key, rest, ok := plainHead(path); ok {
			i, found := slices.BinarySearchFunc(d.top, key, func(m member, k string) int { return strings.Compare(m.key, k) })
			var raw string
			if found {
				raw = d.top[i].raw
			}
			switch {
			case !found:
				return gjson.Result{}
			case rest == "":
				return gjson.Parse(raw)
			default:
				return gjson.Get(raw, rest)
			}
		}
	}
	return gjson.Get(d.json, path)
}

// toValueKeeping is toValue for a list whose objects are read at key
// only: each object in it becomes a map holding key alone (or nothing,
// when it lacks key). Anything else converts as toValue does.
func toValueKeeping(r gjson.Result, key string) any {
	if !r.IsArray() {
		return toValue(r)
	}
	list := make([]any, 0, 4)
	r.ForEach(func(_, v gjson.Result) bool {
		if !v.IsObject() {
			list = append(list, toValue(v))
			return true
		}
		m := make(map[string]any, 1)
		if raw, found, ok := lastMember(v.Raw, key); ok {
			if found {
				m[key] = toValue(gjson.Parse(raw))
			}
		} else {
			v.ForEach(func(k, fv gjson.Result) bool {
				if k.Str == key {
					m[key] = toValue(fv) // the last of repeated keys wins, as in toValue
				}
				return true
			})
		}
		list = append(list, m)
		return true
	})
	return list
}

// lastMember finds the raw value of the last member named key of the
// JSON object obj (the last of repeated keys wins, as in toValue),
// without building a gjson result for every other member: skipping them
// with scan's string reader costs a fraction of gjson's ForEach, which
// was most of `map(item.labels, .name)` (issue 11). ok is false when obj
// has a key written with escapes, which only an unescaping read can
// compare, or is not well formed; the caller then reads it with gjson.
func lastMember(obj, key string) (raw string, found, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return "", false, false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return "", false, true
	}
	for i < len(obj) && obj[i] == '"' {
		end, okKey := scanString(obj, i+1)
		if !okKey {
			return "", false, false
		}
		k := obj[i+1 : end-1]
		if strings.IndexByte(k, '\\') >= 0 {
			return "", false, false
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return "", false, false
		}
		i = skipSpace(obj, i+1)
		vEnd, okValue := skipValue(obj, i)
		if !okValue {
			return "", false, false
		}
		if k == key {
			raw, found = obj[i:vEnd], true
		}
		i = skipSpace(obj, vEnd)
		switch {
		case i < len(obj) && obj[i] == ',':
			i = skipSpace(obj, i+1)
		case i < len(obj) && obj[i] == '}':
			return raw, found, true
		default:
			return "", false, false
		}
	}
	return "", false, false
}

// skipValue returns the index after the JSON value starting at i of a
// document scan accepted: strings through scanString, containers by
// their brackets (strings inside skipped whole), scalars up to the next
// delimiter. ok is false where s is not well formed.
func skipValue(s string, i int) (int, bool) {
	if i >= len(s) {
		return i, false
	}
	switch s[i] {
	case '"':
		return scanString(s, i+1)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				end, ok := scanString(s, i+1)
				if !ok {
					return end, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	}
	start := i
	for i < len(s) {
		switch s[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, i > start
		}
		i++
	}
	return i, i > start
}

// toValue converts a gjson result to plain Go values. Strings without
// escapes are substrings of the document, so scalars cost no copy.
func toValue(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number:
		return r.Num
	case gjson.True:
		return true
	case gjson.False:
		return false
	case gjson.JSON:
		if r.IsArray() {
			list := make([]any, 0, 4)
			r.ForEach(func(_, v gjson.Result) bool {
				list = append(list, toValue(v))
				return true
			})
			return list
		}
		m := make(map[string]any)
		r.ForEach(func(k, v gjson.Result) bool {
			m[k.Str] = toValue(v)
			return true
		})
		return m
	default: // gjson.Null, and missing values
		return nil
	}
}
