package notion_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion"
)

// awkward are strings encoding/json escapes in its own ways: quotes,
// control characters, HTML characters, U+2028, invalid UTF-8 (TH-33).
var awkward = []string{
	"", "plain", `say "hi"`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
	"<script>&</script>", "line\u2028sep\u2029", "caf\u00e9 \U0001F600", "bad \xff\xfe utf8", "\xc3",
	"truncated\u2026", "del\x7f", "replacement \ufffd kept", "\u2027\u202a next to the separators",
}

// envelopes builds one envelope of every shape around s: each attribute
// kind, optional fields present and absent, error sets, nil lists.
func envelopes(s string) []notion.Envelope {
	text := &notion.Text{Value: s, Section: "secondary"}
	rel, _ := json.Marshal(notion.RelationValue{URI: s, Mention: notion.Section{Section: "primary"}})
	attrs := []notion.Attribute{
		{ID: s, Name: "Title", Type: "inline", Inline: &notion.Inline{Title: &notion.Text{Value: s, Section: "title"}}},
		{ID: "p", Name: s, Type: "inline", Inline: &notion.Inline{PlainText: text}},
		{ID: "e", Name: "E", Type: s, Inline: &notion.Inline{Enum: &notion.Enum{Value: s, Section: "primary"}}},
		{ID: "ec", Name: "E", Type: "inline", Inline: &notion.Inline{Enum: &notion.Enum{Value: s, Color: &notion.RGB{R: 255, G: 0, B: 7}, Section: s}}},
		{ID: "d", Name: "D", Type: "inline", Inline: &notion.Inline{Date: text}},
		{ID: "dt", Name: "DT", Type: "inline", Inline: &notion.Inline{Datetime: text}},
		{ID: "c", Name: "C", Type: "inline", Inline: &notion.Inline{Color: &notion.ColorVal{Value: notion.RGB{R: 1, G: 22, B: 200}, Section: s}}},
		{ID: "two", Name: "Two", Type: "inline", Inline: &notion.Inline{Title: text, Color: &notion.ColorVal{Section: s}}},
		{ID: "none", Name: "None", Type: "inline", Inline: &notion.Inline{}},
		{ID: "img", Name: "I", Type: "embed", Embed: &notion.Embed{SrcURL: s, Image: &notion.Section{Section: "avatar"}}},
		{ID: "all", Name: "A", Type: "embed", Embed: &notion.Embed{SrcURL: "https://x.example/a?b=1&c=<2>",
			Video: &notion.Section{Section: s}, Audio: &notion.Section{}, HTML: &notion.Section{Section: "h"}, PDF: &notion.Section{Section: "p"}}},
		{ID: "rel", Name: "R", Type: "relation", Relation: rel},
		{ID: "bare", Name: "", Type: ""},
	}
	return []notion.Envelope{
		{URI: s, Operations: []notion.Operation{notion.AttributesOp(attrs)}},
		{URI: s, Operations: []notion.Operation{notion.AttributesOp([]notion.Attribute{})}},
		{URI: s, Operations: []notion.Operation{notion.AttributesOp(nil)}},
		{URI: s, Operations: []notion.Operation{notion.ErrorOp(404, s)}},
		{URI: s, Operations: []notion.Operation{notion.ErrorOp(-1, "x"), notion.AttributesOp(attrs[:2])}},
		{URI: s, Operations: []notion.Operation{{Path: []string{s, "b"}, Set: map[string]string{"k": s}}}},
		{URI: s, Operations: []notion.Operation{{Path: nil, Set: nil}}},
		{URI: s, Operations: []notion.Operation{}},
		{URI: s},
	}
}

// TestAppendJSONMatchesMarshal: the hand-written envelope encoder writes
// exactly what encoding/json writes, for every shape and every kind of
// string, so Notion and the result hash see the same bytes (TH-33).
func TestAppendJSONMatchesMarshal(t *testing.T) {
	t.Parallel()
	for _, s := range awkward {
		for i, env := range envelopes(s) {
			want, err := json.Marshal(env)
			require.NoError(t, err)
			got := env.AppendJSON(nil)
			assert.Equal(t, string(want), string(got), "envelope %d around %q", i, s)
			assert.True(t, json.Valid(got))
		}
	}
	t.Run("appends to what is there", func(t *testing.T) {
		env := envelopes("x")[3]
		want, err := json.Marshal(env)
		require.NoError(t, err)
		assert.Equal(t, "prefix"+string(want), string(env.AppendJSON([]byte("prefix"))))
	})
}

// FuzzAppendJSON compares the two encoders on arbitrary strings.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, env := range append(envelopes(a), envelopes(b)...) {
			env.URI = b
			want, err := json.Marshal(env)
			require.NoError(t, err)
			require.Equal(t, string(want), string(env.AppendJSON(nil)))
		}
	})
}
