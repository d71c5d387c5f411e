package mapping

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPluckSameValues: map(x.list, .key), whose read decodes each object
// with that key only, gives what the full decoding gives, error or value,
// whatever the list holds: objects with and without the key, repeated
// keys, other values, a list that is not one. The reference reads the
// same key through an array literal, which the rewrite leaves alone.
func TestPluckSameValues(t *testing.T) {
	t.Parallel()
	docs := map[string]string{
		"objects":          `{"list":[{"name":"a","x":1},{"name":"b"}]}`,
		"key missing":      `{"list":[{"name":"a"},{"other":2},{}]}`,
		"null and nested":  `{"list":[{"name":null},{"name":{"deep":[1,2]}},{"name":[true,false]}]}`,
		"repeated key":     `{"list":[{"name":"first","name":"last"}]}`,
		"escaped key":      `{"list":[{"na\u006de":"escaped"}]}`,
		"not objects":      `{"list":["s",1,null,true,[{"name":"inner"}]]}`,
		"mixed":            `{"list":[{"name":"a"},"s"]}`,
		"empty list":       `{"list":[]}`,
		"an object":        `{"list":{"name":"a"}}`,
		"a string":         `{"list":"abc"}`,
		"null":             `{"list":null}`,
		"absent":           `{"other":1}`,
		"nested list path": `{"list":[{"name":"top"}],"sub":{"list":[{"name":"under"}]}}`,
	}
	c := NewCompiler([]string{"doc"}, nil)
	compile := func(src string) *Program {
		p, err := c.Compile(src, testPos, testPath)
		require.NoError(t, err, src)
		return p
	}
	for _, pair := range [][2]string{
		{`map(doc.list, .name)`, `map(doc.list, [.name][0])`},
		{`map(doc.sub.list, .name)`, `map(doc.sub.list, [.name][0])`},
		{`map(get(doc, "list"), .name)`, `map(get(doc, "list"), [.name][0])`},
	} {
		plucked, full := compile(pair[0]), compile(pair[1])
		require.Contains(t, plucked.prog.Node().String(), getKeyName, pair[0])
		require.NotContains(t, full.prog.Node().String(), getKeyName, pair[1])
		for name, body := range docs {
			d, err := NewDoc([]byte(body))
			require.NoError(t, err, name)
			env := &Env{Docs: map[string]Doc{"doc": d}}
			got, gotErr := plucked.Eval(env)
			want, wantErr := full.Eval(env)
			assert.Equal(t, wantErr != nil, gotErr != nil, "%s on %s: errors %v and %v", pair[0], name, gotErr, wantErr)
			assert.Equal(t, want, got, "%s on %s", pair[0], name)
		}
	}
}
