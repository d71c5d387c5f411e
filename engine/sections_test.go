package engine_test

import (
	"go/token"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
)

// citedSection matches a documentation section a message points the user
// at: docs/expressions.md#expressions, docs/protocol.md#92-syntax.
var citedSection = regexp.MustCompile(`\b(docs/[a-z-]+\.md|README\.md)#([a-z0-9_-]+)`)

// TestCitedSectionsExist: every section a message of the non-test Go code
// cites is a heading of that file, so a renamed heading cannot leave
// messages pointing at nothing.
func TestCitedSectionsExist(t *testing.T) {
	root := ".."
	anchors := map[string]map[string]bool{}
	cited := 0
	eachMessage(t, func(pos token.Position, s string) {
		for _, m := range citedSection.FindAllStringSubmatch(s, -1) {
			cited++
			doc := m[1]
			if anchors[doc] == nil {
				anchors[doc] = markdownAnchors(t, filepath.Join(root, doc))
			}
			assert.True(t, anchors[doc][m[2]], "%s: %s has no heading for #%s", pos, doc, m[2])
		}
	})
	assert.Positive(t, cited)
}
