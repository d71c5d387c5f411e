package provider

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/notion"
)

// render maps the responses to attributes (protocol 6). An attribute whose
// value comes out empty is left out, except title, whose absence turns the
// whole result into "not found": with nothing to call the preview there is
// nothing to show. dev is always present (protocol 6.3, 10 #13). skipped
// names the optional requests that were not sent and why, so that the
// trace of a missing attribute reading one says so. The attributes left
// out are returned with their reasons, for the operator's debug log.
func (p *Provider) render(m *Match, docs map[string]mapping.Doc, skipped map[string]string, tr *Trace) ([]notion.Attribute, []MissingAttribute, *unfurlError) {
	env := &mapping.Env{URI: m.URI, Groups: m.Groups, Docs: docs}
	attrs := make([]notion.Attribute, 0, len(m.Pattern.attrs)+1)
	hasTitle := false
	var left []MissingAttribute
	for _, ap := range m.Pattern.attrs {
		a, missing := p.attribute(ap, env)
		if why, ok := skipped[ap.from]; ok && missing != "" && ap.path != "" {
			missing = fmt.Sprintf("request %s was skipped (%s)", ap.from, why)
		} else if tr != nil && missing == emptyValue {
			// Only a trace pays for walking the response again.
			if why := missingField(ap, env); why != "" {
				missing += ": " + why
			}
		}
		if tr != nil {
			at := AttributeTrace{ID: ap.id, Missing: missing}
			if missing == "" {
				at.Value = traceValue(a)
			}
			tr.Attributes = append(tr.Attributes, at)
		}
		if missing != "" {
			if ap.id == "title" {
				return nil, nil, &unfurlError{status: 404, msg: p.messages.NotFound, cause: "title: " + missing}
			}
			left = append(left, MissingAttribute{ID: ap.id, Why: missing})
			continue
		}
		hasTitle = hasTitle || ap.id == "title"
		attrs = append(attrs, a)
	}
	if !hasTitle {
		return nil, nil, &unfurlError{status: 404, msg: p.messages.NotFound, cause: "no title attribute"}
	}
	if !m.Pattern.hasDev {
		attrs = append(attrs, devAttribute(p.Dev))
		if tr != nil {
			tr.Attributes = append(tr.Attributes, AttributeTrace{ID: "dev", Value: p.Dev})
		}
	}
	return attrs, left, nil
}

// emptyValue is why an attribute whose value is nil, "" or empty is
// missing.
const emptyValue = "value is empty"

// missingField explains an empty value read from a response: the part of
// the path that is absent or null, and the nearest fields that exist
// there, e.g. `issue has no field "asignee" (did you mean "assignee"?)`.
func missingField(ap *attrPlan, env *mapping.Env) string {
	switch {
	case ap.path != "":
		return env.Docs[ap.from].Missing(ap.from, ap.path)
	case ap.expr != nil:
		return ap.expr.Missing(env)
	}
	return ""
}

// value computes an attribute's raw value.
func (p *Provider) value(ap *attrPlan, env *mapping.Env) (any, error) {
	switch {
	case ap.expr != nil:
		return ap.expr.Eval(env)
	case ap.path != "":
		return env.Docs[ap.from].Get(ap.path), nil
	default:
		return expandPlaceholders(ap.literal, env.Groups), nil
	}
}

// attribute builds one attribute, or says why it is missing.
func (p *Provider) attribute(ap *attrPlan, env *mapping.Env) (notion.Attribute, string) {
	v, err := p.value(ap, env)
	if err != nil {
		return notion.Attribute{}, "evaluation failed: " + err.Error()
	}
	if isEmpty(v) {
		return notion.Attribute{}, emptyValue
	}
	a := notion.Attribute{ID: ap.id, Name: ap.name, Type: "inline"}
	switch ap.kind {
	case config.KindTitle, config.KindPlainText, config.KindEnum:
		s, ok := text(v)
		if !ok {
			return a, fmt.Sprintf("value of type %s is not text", typeName(v))
		}
		s = sanitize(s, ap.kind == config.KindPlainText, ap.maxLen)
		if s == "" {
			return a, "value is empty after cleaning"
		}
		in := &notion.Inline{}
		t := &notion.Text{Value: s, Section: ap.section}
		switch ap.kind {
		case config.KindTitle:
			in.Title = t
		case config.KindPlainText:
			in.PlainText = t
		default:
			e := &notion.Enum{Value: s, Section: ap.section}
			if c, ok := p.enumColor(ap, s, env); ok {
				e.Color = &c
			}
			in.Enum = e
		}
		a.Inline = in
	case config.KindDate:
		s, err := mapping.FormatDate(v)
		if err != nil {
			return a, err.Error()
		}
		a.Inline = &notion.Inline{Date: &notion.Text{Value: s, Section: ap.section}}
	case config.KindDatetime:
		s, err := mapping.FormatDatetime(v)
		if err != nil {
			return a, err.Error()
		}
		a.Inline = &notion.Inline{Datetime: &notion.Text{Value: s, Section: ap.section}}
	case config.KindColor:
		r, g, b, err := mapping.ParseColor(v)
		if err != nil {
			return a, err.Error()
		}
		a.Inline = &notion.Inline{Color: &notion.ColorVal{Value: notion.RGB{R: r, G: g, B: b}, Section: ap.section}}
	case config.KindImage, config.KindVideo, config.KindAudio, config.KindHTML, config.KindPDF:
		s, ok := text(v)
		if !ok {
			return a, fmt.Sprintf("value of type %s is not a URL", typeName(v))
		}
		if why := p.checkEmbedURL(s); why != "" {
			return a, why
		}
		sec := &notion.Section{Section: ap.section}
		e := &notion.Embed{SrcURL: s}
		switch ap.kind {
		case config.KindImage:
			e.Image = sec
		case config.KindVideo:
			e.Video = sec
		case config.KindAudio:
			e.Audio = sec
		case config.KindHTML:
			e.HTML = sec
		default:
			e.PDF = sec
		}
		a.Type, a.Inline, a.Embed = "embed", nil, e
	case config.KindRelation:
		s, ok := text(v)
		if !ok {
			return a, fmt.Sprintf("value of type %s is not a uri", typeName(v))
		}
		raw, _ := json.Marshal(notion.RelationValue{URI: sanitize(s, false, ap.maxLen), Mention: notion.Section{Section: ap.section}})
		a.Type, a.Relation = "relation", raw
	default:
		return a, fmt.Sprintf("unknown kind %q", ap.kind)
	}
	return a, ""
}

// enumColor picks an enum's color: the color expression, else the colors
// table. A color that cannot be read is left out, not an error: the value
// still shows.
func (p *Provider) enumColor(ap *attrPlan, value string, env *mapping.Env) (notion.RGB, bool) {
	if ap.color != nil {
		v, err := ap.color.Eval(env)
		if err != nil || isEmpty(v) {
			return notion.RGB{}, false
		}
		r, g, b, err := mapping.ParseColor(v)
		if err != nil {
			return notion.RGB{}, false
		}
		return notion.RGB{R: r, G: g, B: b}, true
	}
	c, ok := ap.colors[value]
	return c, ok
}

// checkEmbedURL allows only https URLs on the provider's allowed or embed
// hosts (TH-31). We never fetch them ourselves; Notion does.
func (p *Provider) checkEmbedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "not an https URL"
	}
	if !p.embedHosts[strings.ToLower(u.Host)] {
		return fmt.Sprintf("host %s is not in upstream.embed_hosts", u.Host)
	}
	return ""
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// text turns a value into display text: lists are joined with ", ".
func text(v any) (string, bool) {
	if s, ok := scalarText(v); ok {
		return s, true
	}
	if list, ok := v.([]any); ok {
		parts := make([]string, 0, len(list))
		for _, item := range list {
			s, ok := scalarText(item)
			if !ok {
				return "", false
			}
			if s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", "), true
	}
	if list, ok := v.([]string); ok {
		return strings.Join(list, ", "), true
	}
	return "", false
}

// scalarText formats strings, numbers and booleans; numbers print without
// a trailing ".0".
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		return strconv.FormatBool(x), true
	case fmt.Stringer:
		return x.String(), true
	}
	return "", false
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}

// sanitize makes attacker-authored upstream text safe to show (TH-33):
// valid UTF-8, no control characters (newlines kept in plain text, which
// may hold them per protocol 6.2), trimmed, and at most maxLen
// characters.
func sanitize(s string, keepNewlines bool, maxLen int) string {
	switch ascii, printable := asciiKind(s); {
	case printable:
		// Nothing below would change a byte of it; most upstream text
		// is like this, and strings.Map would copy it rune by rune.
		return mapping.Truncate(strings.TrimSpace(s), maxLen)
	case ascii:
		return mapping.Truncate(strings.TrimSpace(sanitizeASCII(s, keepNewlines)), maxLen)
	}
	return mapping.Truncate(strings.TrimSpace(sanitizeRunes(s, keepNewlines)), maxLen)
}

// sanitizeRunes is sanitize's character mapping for any text.
func sanitizeRunes(s string, keepNewlines bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if keepNewlines {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' && keepNewlines:
			return r
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) && r != '\u200d':
			// Bidi overrides and other format characters can disguise
			// text; ZWJ stays for emoji sequences.
			return -1
		}
		return r
	}, s)
}

// asciiKind reports whether s is all ASCII, and whether it is all
// printable ASCII (0x20 to 0x7e: no control characters; ASCII has no
// format characters and is valid UTF-8).
func asciiKind(s string) (ascii, printable bool) {
	printable = true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return false, false
		}
		if c < 0x20 || c == 0x7f {
			printable = false
		}
	}
	return true, printable
}

// sanitizeASCII is sanitize's character mapping for ASCII text, byte by
// byte: newlines kept in plain text (CRLF becoming LF), other line
// breaks and tabs turned into spaces, other control characters dropped.
func sanitizeASCII(s string, keepNewlines bool) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case keepNewlines && c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			// CRLF: the LF that follows is kept.
		case c == '\n' && keepNewlines:
			b = append(b, c)
		case c == '\t' || c == '\n' || c == '\r':
			b = append(b, ' ')
		case c < 0x20 || c == 0x7f:
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// traceValue shows an attribute's final value in a trace.
func traceValue(a notion.Attribute) any {
	switch {
	case a.Embed != nil:
		return a.Embed.SrcURL
	case a.Relation != nil:
		return json.RawMessage(a.Relation)
	case a.Inline == nil:
		return nil
	case a.Inline.Title != nil:
		return a.Inline.Title.Value
	case a.Inline.PlainText != nil:
		return a.Inline.PlainText.Value
	case a.Inline.Enum != nil:
		return a.Inline.Enum.Value
	case a.Inline.Date != nil:
		return a.Inline.Date.Value
	case a.Inline.Datetime != nil:
		return a.Inline.Datetime.Value
	case a.Inline.Color != nil:
		return a.Inline.Color.Value
	}
	return nil
}
