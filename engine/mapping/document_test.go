package mapping

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewDoc covers hostile bodies (TH-32): not JSON, empty, too deep.
func TestNewDoc(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "object", body: `{"a":1}`},
		{name: "array", body: `[1,2]`},
		{name: "scalar", body: `"text"`},
		{name: "max depth", body: deep(MaxDepth)},
		{name: "brackets inside strings do not count", body: `{"a":"` + strings.Repeat("[", 500) + `"}`},
		{name: "escaped quote keeps the string open", body: `{"a":"\"` + strings.Repeat("{", 500) + `"}`},
		{name: "empty", body: ``, wantErr: "response body is empty"},
		{name: "truncated", body: `{"a":`, wantErr: "response body is not valid JSON"},
		{name: "HTML", body: `<html><body>Bad gateway</body></html>`, wantErr: "response body is not valid JSON"},
		{name: "trailing garbage", body: `{"a":1} x`, wantErr: "response body is not valid JSON"},
		{name: "too deep TH-32", body: deep(MaxDepth + 1), wantErr: "response body nests deeper than 128 levels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := NewDoc([]byte(tc.body))
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				assert.True(t, d.IsZero())
				return
			}
			require.NoError(t, err)
			assert.False(t, d.IsZero())
		})
	}
}

func TestDocGet(t *testing.T) {
	t.Parallel()
	d, err := NewDoc([]byte(`{
		"s": "text", "esc": "caf\u00e9 \"q\"", "n": 42, "f": 1.5, "t": true, "no": false, "null": null,
		"list": [1, "a", null, {"k": [true]}],
		"obj": {"a": {"b": "deep"}},
		"odd.key": "dotted", "star*": "starred",
		"labels": [{"name": "bug"}, {"name": "ui"}]
	}`))
	require.NoError(t, err)
	tests := []struct {
		path string
		want any
	}{
		{"s", "text"},
		{"esc", `café "q"`},
		{"n", 42.0},
		{"f", 1.5},
		{"t", true},
		{"no", false},
		{"null", nil},
		{"missing", nil},
		{"obj.missing.deeper", nil},
		{"list", []any{1.0, "a", nil, map[string]any{"k": []any{true}}}},
		{"obj", map[string]any{"a": map[string]any{"b": "deep"}}},
		{"obj.a.b", "deep"},
		{"list.3.k.0", true},
		{`odd\.key`, "dotted"},
		{`star\*`, "starred"},
		{"labels.#.name", []any{"bug", "ui"}},
		{"labels.#", 2.0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, d.Get(tc.path))
		})
	}
	t.Run("empty path reads the whole document", func(t *testing.T) {
		t.Parallel()
		small, err := NewDoc([]byte(`{"a":[1]}`))
		require.NoError(t, err)
		assert.Equal(t, map[string]any{"a": []any{1.0}}, small.Get(""))
	})
}

func TestZeroDoc(t *testing.T) {
	t.Parallel()
	var d Doc
	assert.True(t, d.IsZero())
	assert.Nil(t, d.Get("a.b"))
	assert.Nil(t, d.Get(""))
}
