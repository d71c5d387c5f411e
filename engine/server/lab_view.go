package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/provider"
)

// This file turns one lab run into what lab.html draws: the preview in
// Notion's two forms, the trace, the JSON and the playground's answer.

// labView is the data of lab.html.
type labView struct {
	Action, CSRF string
	NeedToken    bool
	Providers    []string
	Form         labForm
	Error        string
	Run          *labRun
}

// labRun is one unfurl as the page shows it.
type labRun struct {
	Provider, Pattern string
	Groups            []labPair
	Requests          []labRequest
	Attributes        []labAttrTrace
	Outcome           string
	// JSON is the exact body Notion would receive, indented.
	JSON string
	// Card is the preview; nil when the answer is an error operation,
	// which ErrorOp then holds.
	Card    *labCard
	ErrorOp *notion.ErrorSet
	// Answers are the upstream JSON bodies the playground reads.
	Answers []labAnswer
	// Responses name the pattern's requests, for the playground's from.
	Responses []string
	// Playground is the playground's answer; nil when no source was given.
	Playground *labPlayground
}

type labPair struct{ Name, Value string }

// labRequest is a provider.RequestTrace with the latency rounded for
// reading.
type labRequest struct {
	provider.RequestTrace
	Took string
}

// labAttrTrace is one attribute of the trace: its value as JSON, or why
// it is missing.
type labAttrTrace struct {
	ID, Value, Missing string
}

// labAnswer is one upstream answer: its status and its body, indented.
type labAnswer struct {
	Request, Method, URL string
	Status               int
	Body                 string
}

// labPlayground is the playground's result (as JSON) or its error.
type labPlayground struct {
	Result, Error string
}

// labCard is the preview as Notion lays it out (protocol 6.6): title,
// the entity picture, the primary and secondary subheadings, the body,
// the embed area and, at the bottom, the avatar and the identifier.
type labCard struct {
	Title      string
	Entity     *labAttr
	Identifier *labAttr
	Avatar     *labAttr
	Primary    []labAttr
	Secondary  []labAttr
	Body       []labAttr
	Embeds     []labAttr
	Relations  []labAttr
	// Background is the Notion color name of the background section;
	// empty for none.
	Background string
}

// labAttr is one attribute as drawn. Kind is the sub-type (plain_text,
// enum, date, datetime, color, image, video, audio, html, pdf, relation).
type labAttr struct {
	ID, Name, Kind, Section string
	// Text is what the preview shows; Raw is the wire value when it
	// differs (dates, colors), shown on hover.
	Text, Raw string
	// Color is a Notion color name (see notionColor) for enums and
	// colors; the stylesheet has a class for each.
	Color string
	// URL is an embed's or image's src_url. The page never loads it:
	// it is shown as a link in a placeholder (see lab.html).
	URL string
}

// labMaxBody caps each upstream body shown; the playground still reads
// the whole body.
const labMaxBody = 64 << 10

func newLabRun(p *provider.Provider, in labForm, r *provider.Result, answers []provider.Exchange) *labRun {
	run := &labRun{JSON: indentJSON(r.Body)}
	if t := r.Trace; t != nil {
		run.Provider, run.Pattern, run.Outcome = t.Provider, t.Pattern, t.Outcome
		for _, k := range slices.Sorted(maps.Keys(t.Groups)) {
			run.Groups = append(run.Groups, labPair{k, t.Groups[k]})
		}
		for _, rt := range t.Requests {
			run.Requests = append(run.Requests, labRequest{RequestTrace: rt, Took: rt.Latency.Round(time.Millisecond).String()})
		}
		for _, at := range t.Attributes {
			lt := labAttrTrace{ID: at.ID, Missing: at.Missing}
			if at.Missing == "" {
				lt.Value = compactJSON(at.Value)
			}
			run.Attributes = append(run.Attributes, lt)
		}
	}
	if r.Error != nil {
		run.ErrorOp = r.Error
	} else {
		run.Card = newLabCard(r.Attributes)
	}
	for _, x := range answers {
		a := labAnswer{Request: x.Request, Method: x.Method, URL: x.URL, Status: x.Status}
		if len(x.Body) > labMaxBody {
			a.Body = string(x.Body[:labMaxBody]) + "\n… (cut at 64 KiB for display)"
		} else if x.Body != nil {
			a.Body = indentJSON(x.Body)
		}
		run.Answers = append(run.Answers, a)
	}
	m, err := p.Match(in.URL)
	if err != nil {
		if in.Source != "" {
			run.Playground = &labPlayground{Error: "the URL matches no pattern of " + p.Name + ", so there is nothing to evaluate against"}
		}
		return run
	}
	run.Responses = m.Pattern.Requests()
	if in.Source != "" {
		v, err := p.Evaluate(m, answers, in.Mode, in.From, in.Source)
		if err != nil {
			run.Playground = &labPlayground{Error: err.Error()}
		} else {
			run.Playground = &labPlayground{Result: indentValue(v)}
		}
	}
	return run
}

// newLabCard sorts the attributes into the preview's places (protocol
// 6.6). The later of two attributes with one id wins (protocol 6.7);
// unfurld never emits two, so this follows the wire order.
func newLabCard(attrs []notion.Attribute) *labCard {
	c := &labCard{}
	for _, a := range attrs {
		la := labAttr{ID: a.ID, Name: a.Name, Kind: a.Type}
		switch {
		case a.Inline != nil:
			inlineAttr(&la, a.Inline)
		case a.Embed != nil:
			embedAttr(&la, a.Embed)
		case a.Relation != nil:
			var rel notion.RelationValue
			_ = json.Unmarshal(a.Relation, &rel)
			la.Kind, la.Section, la.Text = "relation", rel.Mention.Section, rel.URI
		}
		switch la.Section {
		case "title":
			c.Title = la.Text
		case "entity":
			c.Entity = &la
		case "identifier":
			c.Identifier = &la
		case "avatar":
			c.Avatar = &la
		case "primary":
			c.Primary = append(c.Primary, la)
		case "secondary":
			c.Secondary = append(c.Secondary, la)
		case "body":
			c.Body = append(c.Body, la)
		case "embed":
			c.Embeds = append(c.Embeds, la)
		case "background":
			c.Background = la.Color
		default:
			c.Relations = append(c.Relations, la)
		}
	}
	return c
}

func inlineAttr(la *labAttr, in *notion.Inline) {
	switch {
	case in.Title != nil:
		la.Kind, la.Section, la.Text = "title", in.Title.Section, in.Title.Value
	case in.PlainText != nil:
		la.Kind, la.Section, la.Text = "plain_text", in.PlainText.Section, in.PlainText.Value
	case in.Enum != nil:
		la.Kind, la.Section, la.Text = "enum", in.Enum.Section, in.Enum.Value
		la.Color = "default"
		if c := in.Enum.Color; c != nil {
			la.Color, la.Raw = notionColor(*c), hexColor(*c)
		}
	case in.Date != nil:
		la.Kind, la.Section, la.Raw = "date", in.Date.Section, in.Date.Value
		la.Text = in.Date.Value
		if t, err := time.Parse(time.DateOnly, in.Date.Value); err == nil {
			la.Text = t.Format("Jan 2, 2006")
		}
	case in.Datetime != nil:
		la.Kind, la.Section, la.Raw = "datetime", in.Datetime.Section, in.Datetime.Value
		la.Text = in.Datetime.Value
		if t, err := time.Parse(time.RFC3339, in.Datetime.Value); err == nil {
			la.Text = t.UTC().Format("Jan 2, 2006 3:04 PM") + " UTC"
		}
	case in.Color != nil:
		la.Kind, la.Section = "color", in.Color.Section
		la.Color, la.Text = notionColor(in.Color.Value), hexColor(in.Color.Value)
	}
}

func embedAttr(la *labAttr, e *notion.Embed) {
	la.URL = e.SrcURL
	for _, k := range []struct {
		kind string
		s    *notion.Section
	}{{"image", e.Image}, {"video", e.Video}, {"audio", e.Audio}, {"html", e.HTML}, {"pdf", e.PDF}} {
		if k.s != nil {
			la.Kind, la.Section = k.kind, k.s.Section
			return
		}
	}
}

// notionPalette is Notion's named colors (its light theme's text
// colors). A page's CSP allows no style attributes, so a value's color
// cannot be written inline; the preview instead draws each color as the
// nearest of these names, each a class in lab.css, which is also how
// Notion itself draws select options: in its palette, not in arbitrary
// colors. The exact value is shown beside it.
var notionPalette = []struct {
	name    string
	r, g, b int
}{
	{"gray", 0x78, 0x77, 0x74},
	{"brown", 0x9f, 0x6b, 0x53},
	{"orange", 0xd9, 0x73, 0x0d},
	{"yellow", 0xcb, 0x91, 0x2f},
	{"green", 0x44, 0x83, 0x61},
	{"blue", 0x33, 0x7e, 0xa9},
	{"purple", 0x90, 0x65, 0xb0},
	{"pink", 0xc1, 0x4c, 0x8a},
	{"red", 0xd4, 0x4c, 0x47},
}

// notionColor names the palette color nearest to c. Near-grays (little
// saturation) are gray whatever their lightness, as hue means nothing
// there.
func notionColor(c notion.RGB) string {
	r, g, b := int(c.R), int(c.G), int(c.B)
	if max(r, g, b)-min(r, g, b) < 24 {
		return "gray"
	}
	best, bestD := "gray", -1
	for _, p := range notionPalette {
		if p.name == "gray" {
			continue
		}
		d := (r-p.r)*(r-p.r) + (g-p.g)*(g-p.g) + (b-p.b)*(b-p.b)
		if bestD < 0 || d < bestD {
			best, bestD = p.name, d
		}
	}
	return best
}

func hexColor(c notion.RGB) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// indentJSON indents a JSON body; a body that is not JSON is shown as is.
func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// indentValue shows a playground result as indented JSON: strings
// quoted, nil as null, so "" and null and "42" and 42 look different.
// HTML is not escaped into \u003c: the template escapes the page, and
// the operator should read what the expression gave.
func indentValue(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v (%T)", v, v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// compactJSON is one trace value on one line.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return strconv.Quote(fmt.Sprint(v))
	}
	return string(b)
}
