package notion

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends env as encoding/json would marshal it, byte for
// byte. Every cold unfurl encodes one envelope, and json.Marshal spent
// most of its time there walking the fixed shape by reflection and
// boxing the operation's set (issue 11); this writes the shape
// directly. Strings that are not plain printable ASCII, a relation's raw
// object and a set of another type go through encoding/json itself, so
// escaping (HTML characters, U+2028, invalid UTF-8) and validation stay
// exactly its own. TestAppendJSONMatchesMarshal holds the two equal.
func (env Envelope) AppendJSON(b []byte) []byte {
	b = append(b, `{"uri":`...)
	b = appendString(b, env.URI)
	b = append(b, `,"operations":`...)
	if env.Operations == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, op := range env.Operations {
		if i > 0 {
			b = append(b, ',')
		}
		b = op.appendJSON(b)
	}
	return append(b, "]}"...)
}

func (op Operation) appendJSON(b []byte) []byte {
	b = append(b, `{"path":`...)
	b = appendStrings(b, op.Path)
	b = append(b, `,"set":`...)
	switch set := op.Set.(type) {
	case []Attribute:
		if set == nil {
			b = append(b, "null"...)
			break
		}
		b = append(b, '[')
		for i, a := range set {
			if i > 0 {
				b = append(b, ',')
			}
			b = a.appendJSON(b)
		}
		b = append(b, ']')
	case ErrorSet:
		b = append(b, `{"status":`...)
		b = strconv.AppendInt(b, int64(set.Status), 10)
		b = append(b, `,"message":`...)
		b = appendString(b, set.Message)
		b = append(b, '}')
	default:
		b = appendMarshal(b, set)
	}
	return append(b, '}')
}

func (a Attribute) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, a.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, a.Name)
	b = append(b, `,"type":`...)
	b = appendString(b, a.Type)
	if a.Inline != nil {
		b = append(b, `,"inline":`...)
		b = a.Inline.appendJSON(b)
	}
	if a.Embed != nil {
		b = append(b, `,"embed":`...)
		b = a.Embed.appendJSON(b)
	}
	if len(a.Relation) > 0 {
		b = append(b, `,"relation":`...)
		b = appendMarshal(b, a.Relation)
	}
	return append(b, '}')
}

func (in *Inline) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	for _, t := range []struct {
		name string
		v    *Text
	}{{"title", in.Title}, {"plain_text", in.PlainText}} {
		if t.v != nil {
			field(t.name)
			b = t.v.appendJSON(b)
		}
	}
	if in.Enum != nil {
		field("enum")
		b = append(b, `{"value":`...)
		b = appendString(b, in.Enum.Value)
		if in.Enum.Color != nil {
			b = append(b, `,"color":`...)
			b = in.Enum.Color.appendJSON(b)
		}
		b = append(b, `,"section":`...)
		b = appendString(b, in.Enum.Section)
		b = append(b, '}')
	}
	for _, t := range []struct {
		name string
		v    *Text
	}{{"date", in.Date}, {"datetime", in.Datetime}} {
		if t.v != nil {
			field(t.name)
			b = t.v.appendJSON(b)
		}
	}
	if in.Color != nil {
		field("color")
		b = append(b, `{"value":`...)
		b = in.Color.Value.appendJSON(b)
		b = append(b, `,"section":`...)
		b = appendString(b, in.Color.Section)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (t *Text) appendJSON(b []byte) []byte {
	b = append(b, `{"value":`...)
	b = appendString(b, t.Value)
	b = append(b, `,"section":`...)
	b = appendString(b, t.Section)
	return append(b, '}')
}

func (c RGB) appendJSON(b []byte) []byte {
	b = append(b, `{"r":`...)
	b = strconv.AppendUint(b, uint64(c.R), 10)
	b = append(b, `,"g":`...)
	b = strconv.AppendUint(b, uint64(c.G), 10)
	b = append(b, `,"b":`...)
	b = strconv.AppendUint(b, uint64(c.B), 10)
	return append(b, '}')
}

func (e *Embed) appendJSON(b []byte) []byte {
	b = append(b, `{"src_url":`...)
	b = appendString(b, e.SrcURL)
	for _, s := range []struct {
		name string
		v    *Section
	}{{"image", e.Image}, {"video", e.Video}, {"audio", e.Audio}, {"html", e.HTML}, {"pdf", e.PDF}} {
		if s.v != nil {
			b = append(b, `,"`...)
			b = append(b, s.name...)
			b = append(b, `":{"section":`...)
			b = appendString(b, s.v.Section)
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString quotes s as encoding/json does. A string of printable
// ASCII other than the quote, the backslash and the HTML characters, and
// of valid UTF-8 other than U+2028 and U+2029, is copied as it is (an
// ellipsis from truncation is common); any other string is left to
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return appendMarshal(b, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendMarshal(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendMarshal appends v through encoding/json. The values it gets
// (strings, a relation made by json.Marshal, a set of a plain type) do
// not fail to marshal; should one ever, the result is JSON null, never
// invalid JSON (TH-33).
func appendMarshal(b []byte, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, out...)
}
