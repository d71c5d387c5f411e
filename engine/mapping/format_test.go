package mapping

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormatDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any
		want    string
		wantErr string
	}{
		{name: "RFC 3339 UTC", in: "2024-04-22T13:33:48Z", want: "2024-04-22"},
		{name: "day as written with an offset", in: "2024-03-10T23:30:00-08:00", want: "2024-03-10"},
		{name: "fraction", in: "2024-04-22T13:33:48.123456Z", want: "2024-04-22"},
		{name: "offset without colon (Jira)", in: "2024-04-22T13:33:48.000+0000", want: "2024-04-22"},
		{name: "date only", in: "2024-02-29", want: "2024-02-29"},
		{name: "surrounding space", in: " 2024-02-29 ", want: "2024-02-29"},
		{name: "unix seconds float", in: 1713792828.0, want: "2024-04-22"},
		{name: "unix seconds int", in: 1713792828, want: "2024-04-22"},
		{name: "unix seconds int64", in: int64(0), want: "1970-01-01"},
		{name: "nil", in: nil, wantErr: "date: no value"},
		{name: "empty", in: "", wantErr: `date: cannot read "" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "words", in: "yesterday", wantErr: `date: cannot read "yesterday" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "bad month", in: "2024-13-01", wantErr: `date: cannot read "2024-13-01" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "long input is clipped in the message", in: "x123456789012345678901234567890123456789012345", wantErr: `date: cannot read "x12345678901234567890123456789012345678…" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "bool", in: true, wantErr: "date: cannot read a bool as a time"},
		{name: "map", in: map[string]any{}, wantErr: "date: cannot read a map as a time"},
		{name: "NaN", in: math.NaN(), wantErr: "date: unix time NaN is out of range"},
		{name: "after year 9999", in: 1e12, wantErr: "date: unix time 1e+12 is out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FormatDate(tc.in)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestFormatDatetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any
		want    string
		wantErr string
	}{
		{name: "UTC gains milliseconds", in: "2022-01-11T19:53:18Z", want: "2022-01-11T19:53:18.000Z"},
		{name: "offset converted to UTC", in: "2024-03-10T23:30:00-08:00", want: "2024-03-11T07:30:00.000Z"},
		{name: "fraction kept to milliseconds", in: "2022-01-11T19:53:18.829123Z", want: "2022-01-11T19:53:18.829Z"},
		{name: "offset without colon", in: "2024-04-22T13:33:48.5+0200", want: "2024-04-22T11:33:48.500Z"},
		{name: "date is midnight UTC", in: "2024-02-29", want: "2024-02-29T00:00:00.000Z"},
		{name: "unix seconds with fraction", in: 1.5, want: "1970-01-01T00:00:01.500Z"},
		{name: "negative unix seconds", in: -1, want: "1969-12-31T23:59:59.000Z"},
		{name: "nil", in: nil, wantErr: "datetime: no value"},
		{name: "not a time", in: "soon", wantErr: `datetime: cannot read "soon" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "infinite", in: math.Inf(1), wantErr: "datetime: unix time +Inf is out of range"},
		{name: "list", in: []any{}, wantErr: "datetime: cannot read a list as a time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FormatDatetime(tc.in)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseColor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any
		want    [3]uint8
		wantErr string
	}{
		{name: "#rrggbb", in: "#f29513", want: [3]uint8{242, 149, 19}},
		{name: "upper case", in: "#F29513", want: [3]uint8{242, 149, 19}},
		{name: "rrggbb as GitHub writes it", in: "7057ff", want: [3]uint8{112, 87, 255}},
		{name: "#rgb", in: "#0f8", want: [3]uint8{0, 255, 136}},
		{name: "map of floats", in: map[string]any{"r": 1.0, "g": 2.0, "b": 255.0}, want: [3]uint8{1, 2, 255}},
		{name: "map of ints", in: map[string]any{"r": 0, "g": 128, "b": 7}, want: [3]uint8{0, 128, 7}},
		{name: "rgb without #", in: "0f8", wantErr: `color: "0f8" is not a hex color like #rrggbb, rrggbb or #rgb`},
		{name: "four digits", in: "#ffff", wantErr: `color: "#ffff" is not a hex color like #rrggbb, rrggbb or #rgb`},
		{name: "not hex", in: "#12345g", wantErr: `color: "#12345g" is not a hex color like #rrggbb, rrggbb or #rgb`},
		{name: "color name", in: "red", wantErr: `color: "red" is not a hex color like #rrggbb, rrggbb or #rgb`},
		{name: "sign is not hex", in: "+12345", wantErr: `color: "+12345" is not a hex color like #rrggbb, rrggbb or #rgb`},
		{name: "missing component", in: map[string]any{"r": 1, "g": 2}, wantErr: `color: component "b" must be an integer from 0 to 255`},
		{name: "out of range", in: map[string]any{"r": 256, "g": 2, "b": 3}, wantErr: `color: component "r" must be an integer from 0 to 255`},
		{name: "fraction", in: map[string]any{"r": 1, "g": 2.5, "b": 3}, wantErr: `color: component "g" must be an integer from 0 to 255`},
		{name: "nil", in: nil, wantErr: "color: no value"},
		{name: "number", in: 42.0, wantErr: "color: cannot read a number as a color"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, g, b, err := ParseColor(tc.in)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, [3]uint8{r, g, b})
		})
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "short", in: "hello", n: 10, want: "hello"},
		{name: "exact", in: "hello", n: 5, want: "hello"},
		{name: "cut", in: "hello", n: 4, want: "hel…"},
		{name: "runes, not bytes", in: "héllo wörld", n: 6, want: "héllo…"},
		{name: "more bytes than n but few runes", in: "ééé", n: 3, want: "ééé"},
		{name: "one rune fits", in: "é", n: 1, want: "é"},
		{name: "n=1 cut", in: "ab", n: 1, want: "…"},
		{name: "zero", in: "ab", n: 0, want: ""},
		{name: "negative", in: "ab", n: -3, want: ""},
		{name: "empty", in: "", n: 3, want: ""},
		{name: "emoji", in: "🔨🔨🔨🔨", n: 3, want: "🔨🔨…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, Truncate(tc.in, tc.n))
		})
	}
}
