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
		// lastMember skips the other members without gjson: spacing,
		// brackets and quotes inside strings, each kind of value before
		// and after the key.
		"spaces":              "{\"list\":[ { \"name\" : \"a\" , \"x\" : [ 1 , { \"y\" : \"}\" } ] } ,\n\t{\"x\":-1.5e3,\"name\":true\r} ]}",
		"brackets in strings": `{"list":[{"x":"{[\"]}\\","name":"b\"q","z":{"name":"inner"}}]}`,
		"scalars last":        `{"list":[{"a":1,"name":12.5},{"name":false},{"name":null,"y":true},{"name":0}]}`,
		"empty objects":       `{"list":[{},{ },{"name":{}}]}`,
		"escaped other key":   `{"list":[{"x\n":1,"name":"a"}]}`,
	}
	for name, body := range docs {
		_, err := NewDoc([]byte(body))
		require.NoError(t, err, name)
		checkPluck(t, name, body)
	}
}

// checkPluck holds map(x.list, .name) to its full decoding on body.
func checkPluck(t *testing.T, name, body string) {
	t.Helper()
	c := NewCompiler([]string{"doc"}, nil)
	compile := func(src string) *Program {
		p, err := c.Compile(src, testPos, testPath)
		require.NoError(t, err, src)
		return p
	}
	d, err := NewDoc([]byte(body))
	if err != nil {
		return
	}
	env := &Env{Docs: map[string]Doc{"doc": d}}
	for _, pair := range [][2]string{
		{`map(doc.list, .name)`, `map(doc.list, [.name][0])`},
		{`map(doc.sub.list, .name)`, `map(doc.sub.list, [.name][0])`},
		{`map(get(doc, "list"), .name)`, `map(get(doc, "list"), [.name][0])`},
	} {
		plucked, full := compile(pair[0]), compile(pair[1])
		require.Contains(t, plucked.prog.Node().String(), getKeyName, pair[0])
		require.NotContains(t, full.prog.Node().String(), getKeyName, pair[1])
		got, gotErr := plucked.Eval(env)
		want, wantErr := full.Eval(env)
		assert.Equal(t, wantErr != nil, gotErr != nil, "%s on %s: errors %v and %v", pair[0], name, gotErr, wantErr)
		assert.Equal(t, want, got, "%s on %s", pair[0], name)
	}
}

// FuzzPluckSameValues holds the plucked read to the full decoding on any
// list a response may hold.
func FuzzPluckSameValues(f *testing.F) {
	for _, list := range []string{`[{"name":"a","x":[1,{"y":"}"}]}]`, `[{"name":1,"name":2},{}]`, `[{"n\u0061me":3}]`, `["s",{"name":null}]`} {
		f.Add(list)
	}
	f.Fuzz(func(t *testing.T, list string) {
		checkPluck(t, "fuzz", `{"list":`+list+`,"sub":{"list":`+list+`}}`)
	})
}
