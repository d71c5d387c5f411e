package mapping

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// sameResult compares what callers of Doc.result use of a gjson result.
// Index (the offset in the document) differs by design when the top-level
// index answers, and nobody reads it.
func sameResult(t *testing.T, want, got gjson.Result, doc, path string) {
	t.Helper()
	assert.Equal(t, want.Type, got.Type, "type: %s in %.80s", path, doc)
	assert.Equal(t, want.Raw, got.Raw, "raw: %s in %.80s", path, doc)
	assert.Equal(t, want.Str, got.Str, "str: %s in %.80s", path, doc)
	assert.Equal(t, want.Num, got.Num, "num: %s in %.80s", path, doc) //nolint:testifylint // exact: both parse the same text
}

// indexPaths mixes plain keys, which the top-level index answers, with
// every kind of gjson syntax, which must fall back to the full read.
var indexPaths = []string{
	"title", "user.login", "user", "labels", "labels.#", "labels.#.name", "labels.0.name", "labels.5",
	"milestone.creator.login", "state", "missing", "missing.deep", "title.length", "number", "number.x",
	"closed_at", "closed_at.x", "body", "reactions.+1", "dup", "dup.b", "odd.key", `odd\.key`, "a-b", "a_b",
	"0", "1", "labels|@reverse", "labels.@reverse", "@this", "user.*", "us?r.login", "user.", ".user", "user..login",
	"labels.#(name==bug).color", "[title,state]", "{title,state}", "!true", "ti*", "#", "esc", "user|login",
	"labels.!0", "user.!true", "user.@this", "user.[login]", "user.{login}", "labels..0", "labels.#.!x", "user.$x",
}

func TestIndexedReadsMatchGJSON(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile("testdata/issue.json")
	require.NoError(t, err)
	docs := map[string]string{
		"issue fixture": string(fixture),
		"repeated keys": `{"dup":{"a":1},"dup":{"b":2},"title":"x"}`,
		"escaped keys":  `{"odd.key":1,"e\u0073c":"v","a-b":true,"a_b":null,"0":"zero"}`,
		"scalars":       `{"title":"t","number":5,"closed_at":null,"user":"plain"}`,
		"top array":     `[{"title":"a"},{"title":"b"}]`,
		"top string":    `"title"`,
		"empty object":  `{}`,
		"nested arrays": `{"labels":[[1,2],{"name":"bug"}],"user":{"login":["x"]}}`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, err := NewDoc([]byte(doc))
			require.NoError(t, err)
			for _, path := range indexPaths {
				sameResult(t, gjson.Get(doc, path), d.result(path), doc, path)
			}
		})
	}
}

// FuzzIndexedReads holds the top-level index to gjson's own answer for
// any valid document and path.
func FuzzIndexedReads(f *testing.F) {
	for _, p := range indexPaths {
		f.Add(`{"title":"t","user":{"login":"u"},"labels":[{"name":"bug"}],"dup":1,"dup":{"b":2}}`, p)
	}
	f.Fuzz(func(t *testing.T, doc, path string) {
		d, err := NewDoc([]byte(doc))
		if err != nil {
			return
		}
		want, got := gjson.Get(doc, path), d.result(path)
		if path == "" {
			want = gjson.Parse(doc)
		}
		if want.Type != got.Type || want.Raw != got.Raw || want.Str != got.Str || want.Num != got.Num {
			t.Fatalf("path %q in %q: gjson %v %q, indexed %v %q", path, doc, want.Type, want.Raw, got.Type, got.Raw)
		}
	})
}
