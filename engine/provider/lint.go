package provider

import (
	"fmt"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/unfurld/unfurld/engine/config"
)

// This file holds the pattern checks that exist because of Notion rather
// than Go: what Go's regexp accepts but Notion's dashboard refuses, and
// what both accept but lets a rule claim links it should not.

// patternSyntaxDoc is where the repository explains the pattern syntax
// Notion's dashboard takes (protocol 9.2, 9.3).
const patternSyntaxDoc = "docs/protocol.md#92-syntax"

// sharedDomainDoc is where the repository explains why each provider is
// its own Notion integration with its own domain (protocol 1.3).
const sharedDomainDoc = "docs/protocol.md#13-one-integration-per-upstream-domain"

// notionSyntax refuses what Go's regexp accepts but Notion's dashboard
// does not, or reads differently: `unfurld notion-settings` prints the
// pattern for pasting there verbatim, so a Go-only spelling would pass
// here and fail, or match other links, there. Notion's engine is taken to
// be JavaScript's (protocol 9.2), which differs from RE2 in flag syntax
// and Unicode classes (protocol 9.3). It returns "" when src is fine.
func notionSyntax(src string) string {
	inClass := false
	for i := 0; i < len(src); i++ {
		rest := src[i:]
		switch {
		case rest[0] == '\\' && len(rest) > 1:
			switch rest[1] {
			case 'A', 'z':
				return fmt.Sprintf("\\%c is Go's spelling, which Notion's dashboard does not take; write %s (see %s)", rest[1], map[byte]string{'A': "^", 'z': "$"}[rest[1]], patternSyntaxDoc)
			case 'Q':
				return fmt.Sprintf("\\Q...\\E is Go's quoting, which Notion's dashboard does not take; escape each special character with \\ instead (see %s)", patternSyntaxDoc)
			case 'p', 'P':
				return fmt.Sprintf("Unicode classes like \\%c{...} need a flag Notion's patterns do not set, and without it they match a plain letter %c; keep the pattern ASCII, e.g. [A-Za-z] (see %s)", rest[1], rest[1], patternSyntaxDoc)
			}
			i++ // the escaped character stands for itself
		case inClass && strings.HasPrefix(rest, "[:"):
			if end := strings.Index(rest, ":]"); end > 0 {
				return fmt.Sprintf("%s is a Go character class, which Notion's dashboard reads as a set of single characters; write the range out, e.g. [A-Za-z] for [:alpha:] (see %s)", rest[:end+2], patternSyntaxDoc)
			}
		case rest[0] == '[' && !inClass:
			inClass = true
			if strings.HasPrefix(rest, "[^]") || strings.HasPrefix(rest, "[]") {
				// A ] first in a class is a literal ].
				i += strings.Index(rest, "]")
			}
		case rest[0] == ']' && inClass:
			inClass = false
		case inClass:
		case strings.HasPrefix(rest, "(?P<"):
			name, _, _ := strings.Cut(rest[len("(?P<"):], ">")
			return fmt.Sprintf("(?P<%s>...) is Go's spelling of a named group, which Notion's dashboard refuses; write (?<%s>...) (see %s)", name, name, patternSyntaxDoc)
		case strings.HasPrefix(rest, "(?") && len(rest) > 2 && isFlag(rest[2]):
			j := 2
			for j < len(rest) && (isFlag(rest[j]) || rest[j] == '-') {
				j++
			}
			return fmt.Sprintf("%s sets flags inline, Go syntax that Notion's dashboard does not take; remove it, and for (?i) spell the cases out, e.g. [Gg]it[Hh]ub (see %s)", rest[:min(j+1, len(rest))], patternSyntaxDoc)
		}
	}
	return ""
}

// isFlag reports whether c is one of RE2's inline flags.
func isFlag(c byte) bool { return c == 'i' || c == 'm' || c == 's' || c == 'U' }

// checkAnchors warns when re may match in the middle of a link. Notion
// spots links with the pattern (protocol 9.1) and we route with it, so an
// unanchored rule claims links that merely contain a matching part: a
// login page whose return address is an issue link, or an issue link
// with a suffix the captures then drop. Each warning shows such a link,
// built from the first sample and checked against re, so the example is
// never one the pattern would in fact refuse.
func (b *builder) checkAnchors(re *regexp.Regexp, pc *config.Pattern, path string) {
	start, end := anchored(re.String())
	if start && end {
		return
	}
	sample := ""
	if len(pc.Samples) > 0 {
		sample = pc.Samples[0]
	}
	if !start {
		msg := "the regex is not anchored at the start, so it also matches links with anything in front"
		if ex := junkInFront(re, sample); ex != "" {
			msg += fmt.Sprintf(", such as %q", ex)
		}
		b.warn(path, "%s; begin it with ^ (see %s)", msg, patternSyntaxDoc)
	}
	if !end {
		msg := "the regex is not anchored at the end, so it also matches links with anything after it"
		if ex := junkBehind(re, sample); ex != "" {
			msg += fmt.Sprintf(", such as %q", ex)
		}
		b.warn(path, "%s; end it with $ (see %s)", msg, patternSyntaxDoc)
	}
}

// junkInFront returns a link on the sample's own host that holds the
// sample in its query, if re matches it.
func junkInFront(re *regexp.Regexp, sample string) string {
	u, err := url.Parse(sample)
	if err != nil || u.Host == "" {
		return ""
	}
	ex := u.Scheme + "://" + u.Host + "/login?return_to=" + sample
	if !re.MatchString(ex) {
		return ""
	}
	return ex
}

// junkBehind returns the sample with text appended, if re matches it.
func junkBehind(re *regexp.Regexp, sample string) string {
	if sample == "" {
		return ""
	}
	ex := sample + "-anything/else"
	if !re.MatchString(ex) {
		return ""
	}
	return ex
}

// anchored reports whether every way through the regex src begins at the
// start of the text and ends at its end. src has compiled already; a
// parse failure here reports both anchors as present, so no warning
// repeats another problem.
func anchored(src string) (start, end bool) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return true, true
	}
	return anchoredAt(re, true), anchoredAt(re, false)
}

// anchoredAt reports whether re is anchored at its first (first true) or
// last element. An alternation is anchored when every branch is; a group
// is anchored when its content is.
func anchoredAt(re *syntax.Regexp, first bool) bool {
	switch re.Op {
	case syntax.OpBeginText, syntax.OpBeginLine:
		return first
	case syntax.OpEndText, syntax.OpEndLine:
		return !first
	case syntax.OpCapture:
		return anchoredAt(re.Sub[0], first)
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			return false
		}
		if first {
			return anchoredAt(re.Sub[0], first)
		}
		return anchoredAt(re.Sub[len(re.Sub)-1], first)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchoredAt(s, first) {
				return false
			}
		}
		return true
	}
	return false
}
