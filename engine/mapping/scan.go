package mapping

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Errors of scan, as NewDoc reports them.
var (
	errNotJSON = errors.New("response body is not valid JSON")
	errTooDeep = fmt.Errorf("response body nests deeper than %d levels", MaxDepth)
)

// member is a top-level member of an object document: its key as
// written (scan indexes no document whose keys hold escapes) and its raw
// value, both substrings of the document.
type member struct {
	key, raw string
}

// scan states: what the next token must be.
const (
	wantValue        = iota // any value
	wantValueOrClose        // a value or ']' (just after '[')
	wantKey                 // a member's key (after ',' in an object)
	wantKeyOrClose          // a key or '}' (just after '{')
	afterValue              // ',' or the container's close, or the end
)

// scan checks that s is one JSON value (RFC 8259, what encoding/json
// accepts) nested at most MaxDepth deep (TH-32), in one pass without
// recursion, and returns the members of an object document sorted by key
// for Doc's top-level index. It returns no members when the document is
// not an object, or repeats a key, or has a key with escapes: gjson reads
// such keys in ways one plain entry per key cannot stand for.
//
// This one pass replaces three: a depth check, gjson's validation (which
// recurses) and a walk of the top-level members to index them (issue 2:
// together a tenth of the CPU of an uncached unfurl).
func scan(s string) ([]member, error) {
	var stack [MaxDepth]byte // the open containers, '{' or '['
	depth := 0
	first := skipSpace(s, 0)
	indexable := first < len(s) && s[first] == '{'
	var members []member
	if indexable {
		members = make([]member, 0, 32) // most API objects have fewer fields
	}
	// valueAt and valueEnd delimit the value just read, for members.
	key, valueAt, valueEnd := "", -1, 0
	state := wantValue
	i := 0
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			if state == afterValue && depth == 0 {
				break
			}
			return nil, errNotJSON
		}
		c := s[i]
		switch state {
		case wantValue, wantValueOrClose:
			if state == wantValueOrClose && c == ']' {
				depth--
				i++
				valueEnd, state = i, afterValue
				continue
			}
			if depth == 1 && indexable {
				valueAt = i
			}
			switch {
			case c == '{' || c == '[':
				if depth == MaxDepth {
					return nil, errTooDeep
				}
				stack[depth] = c
				depth++
				i++
				state = wantValueOrClose
				if c == '{' {
					state = wantKeyOrClose
				}
				continue
			case c == '"':
				end, ok := scanString(s, i+1)
				if !ok {
					return nil, errNotJSON
				}
				i = end
			case c == '-' || '0' <= c && c <= '9':
				end, ok := scanNumber(s, i)
				if !ok {
					return nil, errNotJSON
				}
				i = end
			case strings.HasPrefix(s[i:], "true"):
				i += len("true")
			case strings.HasPrefix(s[i:], "false"):
				i += len("false")
			case strings.HasPrefix(s[i:], "null"):
				i += len("null")
			default:
				return nil, errNotJSON
			}
			valueEnd, state = i, afterValue
		case wantKey, wantKeyOrClose:
			if state == wantKeyOrClose && c == '}' {
				depth--
				i++
				valueEnd, state = i, afterValue
				continue
			}
			if c != '"' {
				return nil, errNotJSON
			}
			end, ok := scanString(s, i+1)
			if !ok {
				return nil, errNotJSON
			}
			if depth == 1 && indexable {
				key = s[i+1 : end-1]
				indexable = !strings.Contains(key, `\`)
			}
			i = skipSpace(s, end)
			if i >= len(s) || s[i] != ':' {
				return nil, errNotJSON
			}
			i++
			state = wantValue
		case afterValue:
			if depth == 0 {
				return nil, errNotJSON // trailing data after the value
			}
			if depth == 1 && indexable && valueAt >= 0 {
				members = append(members, member{key: key, raw: s[valueAt:valueEnd]})
				valueAt = -1
			}
			open := stack[depth-1]
			switch {
			case c == ',':
				i++
				state = wantValue
				if open == '{' {
					state = wantKey
				}
			case c == '}' && open == '{', c == ']' && open == '[':
				depth--
				i++
				valueEnd = i
			default:
				return nil, errNotJSON
			}
		}
	}
	if !indexable || len(members) == 0 {
		return nil, nil
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for j := 1; j < len(members); j++ {
		if members[j].key == members[j-1].key {
			return nil, nil
		}
	}
	return members, nil
}

// skipSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString checks the string whose content starts at i and returns the
// index after its closing quote: no control characters, only JSON's
// escapes. Runs of plain bytes, most of a string, are skipped eight at a
// time (plainRun).
func scanString(s string, i int) (int, bool) {
	for i < len(s) {
		i = plainRun(s, i)
		if i >= len(s) {
			break
		}
		c := s[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i+1 >= len(s) {
				return i, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		default:
			i++
		}
	}
	return i, false
}

// SWAR constants: a byte repeated in each of a word's eight bytes.
const (
	ones   = 0x0101010101010101
	highs  = 0x8080808080808080
	quotes = '"' * ones
	backs  = '\\' * ones
	spaces = 0x20 * ones
)

// plainRun returns the index of the first byte at or after i that a
// string's scan must look at (a quote, a backslash or a control
// character), or a few bytes before the end of s. It reads eight bytes as
// one word and flags such bytes with the classic bit tricks ("SWAR",
// "determine if a word has a byte less than n" in Sean Anderson's Bit
// Twiddling Hacks): for a byte b, the high bit of (b - n) &^ b is set
// when b < n (n <= 0x80); a byte equal to q is one where b ^ q < 1. A
// borrow only runs upwards, into bytes after a flagged one, so the lowest
// flag is exact, and bytes 0x80 and above (UTF-8) are never flagged.
// Scanning the ~6 KB body of an uncached unfurl was a twentieth of its
// CPU byte by byte (issue 11).
func plainRun(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		b8 := s[i : i+8] // one bounds check for the eight reads below
		w := uint64(b8[0]) | uint64(b8[1])<<8 | uint64(b8[2])<<16 | uint64(b8[3])<<24 |
			uint64(b8[4])<<32 | uint64(b8[5])<<40 | uint64(b8[6])<<48 | uint64(b8[7])<<56
		q, b := w^quotes, w^backs
		flags := ((w - spaces) &^ w) | ((q - ones) &^ q) | ((b - ones) &^ b)
		if flags &= highs; flags != 0 {
			return i + bits.TrailingZeros64(flags)/8
		}
	}
	return i
}

// scanNumber checks the number starting at i and returns the index after
// it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(s string, i int) (int, bool) {
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func skipDigits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
