package mapping

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Layouts of the outputs Notion expects (protocol 6.2).
const (
	dateLayout     = "2006-01-02"
	datetimeLayout = "2006-01-02T15:04:05.000Z"
)

// timeLayouts are the timestamp spellings date() and datetime() read.
// time.RFC3339 also accepts fractional seconds. The second layout is the
// offset without a colon ("+0000") that Jira and other Java-based APIs
// send.
var timeLayouts = [...]string{time.RFC3339, "2006-01-02T15:04:05Z0700"}

// unix seconds outside years 1..9999 cannot be written as YYYY-MM-DD.
const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// errNoValue is returned by the Format functions for nil, which callers
// usually treat as a missing attribute rather than a broken one.
var errNoValue = errors.New("no value")

// FormatDate formats v as a calendar date "YYYY-MM-DD" (protocol 6.2). v
// is an RFC 3339 timestamp (its calendar day as written, offset kept), a
// "YYYY-MM-DD" date, or a number of unix seconds (read in UTC). Anything
// else, nil included, is an error.
func FormatDate(v any) (string, error) {
	t, err := parseTime(v)
	if err != nil {
		return "", fmt.Errorf("date: %w", err)
	}
	return t.Format(dateLayout), nil
}

// FormatDatetime formats v as a UTC timestamp with milliseconds,
// "2006-01-02T15:04:05.000Z" (protocol 6.2). It reads the same inputs as
// FormatDate; a bare date is midnight UTC.
func FormatDatetime(v any) (string, error) {
	t, err := parseTime(v)
	if err != nil {
		return "", fmt.Errorf("datetime: %w", err)
	}
	return t.UTC().Format(datetimeLayout), nil
}

// parseTime reads the inputs of FormatDate and FormatDatetime.
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, errNoValue
	case string:
		s := strings.TrimSpace(x)
		if len(s) == len(dateLayout) {
			if t, err := time.Parse(dateLayout, s); err == nil {
				return t, nil
			}
		}
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("cannot read %q as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds", clip(x))
	default:
		f, ok := toFloat(v)
		if !ok {
			return time.Time{}, fmt.Errorf("cannot read a %s as a time", typeName(v))
		}
		if math.IsNaN(f) || f < minUnix || f > maxUnix {
			return time.Time{}, fmt.Errorf("unix time %v is out of range", f)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
}

// ParseColor reads a color as Notion's {r, g, b} components (protocol
// 6.2): a hex string "#rgb", "#rrggbb" or "rrggbb" (GitHub writes label
// colors without '#'), or a map with integer "r", "g" and "b" in 0..255
// such as color() returns.
func ParseColor(v any) (r, g, b uint8, err error) {
	switch x := v.(type) {
	case string:
		return parseHexColor(x)
	case map[string]any:
		var c [3]uint8
		for i, k := range [3]string{"r", "g", "b"} {
			f, ok := toFloat(x[k])
			if !ok || f != math.Trunc(f) || f < 0 || f > 255 {
				return 0, 0, 0, fmt.Errorf("color: component %q must be an integer from 0 to 255", k)
			}
			c[i] = uint8(f)
		}
		return c[0], c[1], c[2], nil
	case nil:
		return 0, 0, 0, fmt.Errorf("color: %w", errNoValue)
	default:
		return 0, 0, 0, fmt.Errorf("color: cannot read a %s as a color", typeName(v))
	}
}

// parseHexColor reads "#rgb", "#rrggbb" and "rrggbb".
func parseHexColor(s string) (r, g, b uint8, err error) {
	hex := strings.TrimSpace(s)
	hasHash := strings.HasPrefix(hex, "#")
	hex = strings.TrimPrefix(hex, "#")
	if len(hex) == 3 && hasHash {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	if len(hex) != 6 {
		return 0, 0, 0, fmt.Errorf("color: %q is not a hex color like #rrggbb, rrggbb or #rgb", clip(s))
	}
	n, perr := strconv.ParseUint(hex, 16, 32)
	if perr != nil {
		return 0, 0, 0, fmt.Errorf("color: %q is not a hex color like #rrggbb, rrggbb or #rgb", clip(s))
	}
	return uint8(n >> 16), uint8(n >> 8), uint8(n), nil
}

// Truncate shortens s to at most n runes. When it cuts, the last kept rune
// is "…", so the reader sees that text is missing. n <= 0 gives "".
func Truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	// Fast path: byte length bounds rune count.
	if len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n-1 {
			// i is where rune n starts. If it is the last rune, s fits;
			// otherwise keep n-1 runes and the ellipsis.
			if _, size := utf8.DecodeRuneInString(s[i:]); i+size >= len(s) {
				return s
			}
			return s[:i] + "…"
		}
		count++
	}
	return s
}

// clip keeps upstream text quoted in error messages short (TH-33).
func clip(s string) string { return Truncate(s, 40) }

// toFloat reads the number types an evaluation can produce.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	default:
		return 0, false
	}
}

// formatNumber writes integral numbers without a fraction ("42", not
// "42.000000" or "4.2e+01"), because JSON numbers arrive as float64.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// typeName names a value's type in the words of the language.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "string"
	case bool:
		return "bool"
	case []any, []string:
		return "list"
	case map[string]any, map[string]string:
		return "map"
	}
	if _, ok := toFloat(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}
