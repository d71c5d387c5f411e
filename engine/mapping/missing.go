package mapping

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// maxNearKeys is how many existing keys a missing-field hint lists.
const maxNearKeys = 5

// Missing explains why path reads nothing from d, the response named
// name: which component of the path is absent, null, out of range or not
// an object, and, for an absent key, the nearest keys that do exist at
// that level, closest spelling first. It returns "" when the path reads a
// value, and for paths using gjson syntax beyond plain keys and indexes
// (queries, wildcards, modifiers), which it does not try to take apart.
//
// It walks the document again, so callers use it only to report a
// missing value (preview --trace, fixtures, the lab), never per unfurl.
func (d Doc) Missing(name, path string) string {
	if d.IsZero() {
		return fmt.Sprintf("the response %s is empty", name)
	}
	if path == "" {
		return ""
	}
	parts := strings.Split(path, ".")
	for _, p := range parts {
		if p == "" || !isPlainKey(p) {
			return ""
		}
	}
	cur := gjson.Parse(d.json)
	at := name
	for _, p := range parts {
		switch {
		case cur.IsObject():
			next := cur.Get(gjson.Escape(p))
			if !next.Exists() {
				return absentKey(at, p, cur)
			}
			cur = next
		case cur.IsArray():
			i, err := strconv.Atoi(p)
			n := int(cur.Get("#").Int())
			if err != nil {
				return fmt.Sprintf("%s is a list of %d, which has no field %q; read one item (%s.0.%s) or all of them (%s.#.%s)", at, n, p, at, p, at, p)
			}
			if i >= n {
				return fmt.Sprintf("%s has %d items, so there is no item %d", at, n, i)
			}
			cur = cur.Get(p)
		case cur.Type == gjson.Null:
			return fmt.Sprintf("%s is null", at)
		default:
			return fmt.Sprintf("%s is a %s, which has no field %q", at, jsonType(cur), p)
		}
		at += "." + p
	}
	if cur.Type == gjson.Null {
		return fmt.Sprintf("%s is null", at)
	}
	return ""
}

// absentKey says that obj, at path at, has no key want, and lists the
// keys it has that are nearest to want.
func absentKey(at, want string, obj gjson.Result) string {
	var keys []string
	obj.ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, k.String())
		return true
	})
	if len(keys) == 0 {
		return fmt.Sprintf("%s has no field %q: it is an empty object", at, want)
	}
	lower := strings.ToLower(want)
	dist := make(map[string]int, len(keys))
	for _, k := range keys {
		dist[k] = distance(lower, strings.ToLower(k))
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if dist[keys[i]] != dist[keys[j]] {
			return dist[keys[i]] < dist[keys[j]]
		}
		return keys[i] < keys[j]
	})
	msg := fmt.Sprintf("%s has no field %q", at, want)
	if best := keys[0]; dist[best] < 3 && dist[best] < len(want) {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	near := keys[:min(len(keys), maxNearKeys)]
	quoted := make([]string, len(near))
	for i, k := range near {
		quoted[i] = strconv.Quote(k)
	}
	what := "nearest fields there"
	if len(keys) <= maxNearKeys {
		what = "its fields"
	}
	return fmt.Sprintf("%s; %s: %s", msg, what, strings.Join(quoted, ", "))
}

// isPlainKey reports whether s is one component gjson reads as itself:
// no wildcards, escapes, queries or modifiers.
func isPlainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainKeyByte(s[i]) {
			return false
		}
	}
	return true
}

// jsonType names a JSON value's type for messages.
func jsonType(r gjson.Result) string {
	switch r.Type {
	case gjson.String:
		return "string"
	case gjson.Number:
		return "number"
	case gjson.True, gjson.False:
		return "boolean"
	}
	return "value"
}
