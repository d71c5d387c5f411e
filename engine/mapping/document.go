package mapping

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// MaxDepth is how deeply a response may nest arrays and objects. Real APIs
// stay far below it; a deeper body is hostile (TH-32) and would make
// gjson's recursive validation and our recursive conversion costly.
const MaxDepth = 128

// Doc is one upstream JSON response, read lazily with gjson paths: only the
// values an expression reads are ever decoded. The zero Doc is an empty
// response (a missing optional request); every read from it gives nil.
type Doc struct {
	// json is kept as a string because gjson works on strings without
	// copying; NewDoc pays the one copy from the body bytes.
	json string
}

// NewDoc wraps a JSON body. It reports an error when body is not valid JSON
// or nests deeper than MaxDepth (TH-32), so that later reads never meet a
// malformed document.
func NewDoc(body []byte) (Doc, error) {
	if len(body) == 0 {
		return Doc{}, errors.New("response body is empty")
	}
	// The depth check runs first: it is iterative, while gjson's
	// validation recurses once per nesting level.
	if err := checkDepth(body); err != nil {
		return Doc{}, err
	}
	if !gjson.ValidBytes(body) {
		return Doc{}, errors.New("response body is not valid JSON")
	}
	return Doc{json: string(body)}, nil
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
	return gjson.Get(d.json, path)
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

// checkDepth rejects documents nested deeper than MaxDepth. It only needs
// to track strings (brackets inside them don't count); validity is checked
// afterwards by gjson.
func checkDepth(body []byte) error {
	depth := 0
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte, which may be a quote
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > MaxDepth {
				return fmt.Errorf("response body nests deeper than %d levels", MaxDepth)
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}
