package provider

import (
	"fmt"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
)

// Modes of Evaluate: what the source is, as in an attribute's
// configuration.
const (
	// PlaygroundExpr evaluates the source as an attribute's `expr`.
	PlaygroundExpr = "expr"
	// PlaygroundPath reads the source as an attribute's `path` from the
	// response `from`.
	PlaygroundPath = "path"
)

// playgroundFile names the source in Evaluate's errors, in place of a
// YAML file: "expression:1:7: unknown name isue (did you mean issue?)".
const playgroundFile = "expression"

// Evaluate is the mapping playground of the lab page: it compiles src
// with the compiler m's pattern compiled its attributes with (the same
// response and group names, MaxNodes and helper set), so an expression
// that works here works in the configuration and one that fails there
// fails here with the same message. It then evaluates src against
// answers, the upstream answers of one unfurl of m as
// UnfurlOptions.Record collected them. A request with no 2xx JSON answer
// reads as an empty response, as a skipped optional request does.
//
// In PlaygroundPath mode, an empty from is the pattern's first request,
// as for an attribute. The answers are parsed for this call only and not
// kept.
func (p *Provider) Evaluate(m *Match, answers []Exchange, mode, from, src string) (any, error) {
	comp := m.Pattern.comp
	if comp == nil {
		return nil, fmt.Errorf("pattern %s has no compiler", m.Pattern.Name)
	}
	pos := config.Pos{File: playgroundFile, Line: 1, Col: 1}
	var ev mapping.Evaluator
	switch mode {
	case PlaygroundExpr:
		prog, err := comp.Compile(src, pos, "")
		if err != nil {
			return nil, err
		}
		ev = prog
	case PlaygroundPath:
		if from == "" && len(m.Pattern.requests) > 0 {
			from = m.Pattern.requests[0].name
		}
		path, err := comp.CompilePath(from, src, pos, "")
		if err != nil {
			return nil, err
		}
		ev = path
	default:
		return nil, fmt.Errorf("unknown playground mode %q; want %s or %s", mode, PlaygroundExpr, PlaygroundPath)
	}
	docs := make(map[string]mapping.Doc, len(answers))
	for _, x := range answers {
		if x.Body == nil {
			continue
		}
		// The provider parsed this body already during the unfurl; a
		// body that is not JSON ended it as an error, and reads empty here.
		if d, err := mapping.NewDoc(x.Body); err == nil {
			docs[x.Request] = d
		}
	}
	return ev.Eval(&mapping.Env{URI: m.URI, Groups: m.Groups, Docs: docs})
}

// Requests names the pattern's requests in order, for the playground's
// choice of response.
func (p *Pattern) Requests() []string {
	names := make([]string, 0, len(p.requests))
	for _, rp := range p.requests {
		names = append(names, rp.name)
	}
	return names
}
