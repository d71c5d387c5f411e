package mapping

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// depthByBytes is the byte-by-byte nesting count NewDoc used before scan:
// brackets inside strings do not count. It says whether body stays
// within MaxDepth.
func depthByBytes(body string) bool {
	depth := 0
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++
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
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}

// scanSamples are valid and invalid documents at every corner of the
// grammar (RFC 8259).
var scanSamples = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `-12.0E+2`, `true`, `false`, `null`, ` {"a" : [ 1 , 2 ] } `,
	`{"a":{"b":[{"c":"d"}]}}`, `["\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"]`, "\"\x7f\xff\"", `{"a":1,"a":2}`,
	`{"a\u0062":1}`, `[[[]]]`, `{"":0}`,
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{1:2}`, `{'a':1}`,
	`01`, `1.`, `.5`, `1e`, `1e+`, `-`, `+1`, `0x10`, `NaN`, `tru`, `nul`, `truex`, `"abc`, `"a\x"`, `"\u12"`,
	"\"a\x01b\"", "\"a\nb\"", `{"a":1}{}`, `{"a":1} x`, `[1 2]`, `{"a" 1}`, `[}`, `{]`, `"\`, `[-]`, `[1.e2]`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	`{"a":"` + strings.Repeat("[", 500) + `"}`, `{"a":"\"` + strings.Repeat("{", 500) + `"}`,
}

// TestScanAgreesWithEncodingJSON: scan accepts exactly what encoding/json
// accepts, and refuses for depth exactly what the old depth count
// refused (TH-32).
func TestScanAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, doc := range scanSamples {
		checkScan(t, doc)
	}
}

func checkScan(t *testing.T, doc string) {
	t.Helper()
	_, err := scan(doc)
	switch {
	case !json.Valid([]byte(doc)):
		require.Error(t, err, "%.100q is not JSON", doc)
	case !depthByBytes(doc):
		require.ErrorIs(t, err, errTooDeep, "%.100q", doc)
	default:
		require.NoError(t, err, "%.100q", doc)
	}
	if err != nil {
		assert.True(t, errors.Is(err, errNotJSON) || errors.Is(err, errTooDeep), "%v", err)
	}
}

// TestScanStringWordAtATime: scanString reads eight bytes at a time
// (plainRun), so a quote, a backslash, a control character, DEL and UTF-8
// bytes are tried at every offset of the first words of a string, in a
// member whose raw value must come out whole.
func TestScanStringWordAtATime(t *testing.T) {
	t.Parallel()
	specials := []string{`"`, `\\`, `\"`, `\/`, `\u00e9`, `\x`, "\x00", "\x1f", "\x7f", "é", "\xff", `\`, " ", "~"}
	for before := range 18 {
		for _, sp := range specials {
			for _, after := range []int{0, 1, 7, 8, 9} {
				str := strings.Repeat("a", before) + sp + strings.Repeat("b", after)
				for _, doc := range []string{`"` + str + `"`, `{"k":"` + str + `","z":1}`, `"` + str} {
					checkScan(t, doc)
					members, err := scan(doc)
					if err == nil && len(members) > 0 {
						assert.Equal(t, gjson.Get(doc, "k").Raw, members[0].raw, "%q", doc)
					}
				}
			}
		}
	}
}

// TestScanMembers: an object's members come sorted with their raw values;
// repeated and escaped keys and non-objects give no index.
func TestScanMembers(t *testing.T) {
	t.Parallel()
	members, err := scan(` { "b" : [1, {"x":"}"}] , "a":"s\"q", "c" : -1.5e3 , "d":{} } `)
	require.NoError(t, err)
	assert.Equal(t, []member{{"a", `"s\"q"`}, {"b", `[1, {"x":"}"}]`}, {"c", `-1.5e3`}, {"d", `{}`}}, members)
	for _, doc := range []string{`{"a":1,"a":2}`, `{"a\u0062":1}`, `[{"a":1}]`, `"a"`, `{}`} {
		members, err := scan(doc)
		require.NoError(t, err)
		assert.Nil(t, members, doc)
	}
}

// FuzzScan holds scan to encoding/json's validity and the old depth count
// on any input, and its members to gjson's reading of them.
func FuzzScan(f *testing.F) {
	for _, doc := range scanSamples {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		checkScan(t, doc)
		members, err := scan(doc)
		if err != nil {
			return
		}
		for _, m := range members {
			if got := gjson.Get(doc, gjson.Escape(m.key)).Raw; got != m.raw {
				t.Fatalf("member %q of %q: raw %q, gjson %q", m.key, doc, m.raw, got)
			}
		}
	})
}
