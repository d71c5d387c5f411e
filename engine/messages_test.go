package engine_test

import (
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// internalID matches the ids of the team's own notes (threats TH-nn,
// faults Fnn, "protocol 6.6"), which no user can look up. Messages cite
// docs/security.md or docs/protocol.md instead (whose anchors are lower
// case), or nothing.
var internalID = regexp.MustCompile(`\bTH-\d+|\bprotocol \d+|\(F\d+\)|\bF\d+[,;)]|security\.md [A-Z]`)

// TestMessagesCiteNoInternalIDs scans every string literal of the
// non-test Go code (errors, log lines, pages, CLI output) and every golden
// file: what a user reads must resolve inside the repository. Comments
// may keep the ids.
func TestMessagesCiteNoInternalIDs(t *testing.T) {
	goFiles := eachMessage(t, func(pos token.Position, s string) {
		assert.False(t, internalID.MatchString(s), "%s: message cites an internal id: %s", pos, s)
	})
	goldens := 0
	walkRepo(t, func(path string) {
		if !strings.HasSuffix(path, ".golden") && !strings.HasSuffix(path, ".html") {
			return
		}
		goldens++
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.False(t, internalID.Match(data), "%s cites an internal id: %s", path, internalID.Find(data))
	})
	assert.Greater(t, goFiles, 50)
	assert.Greater(t, goldens, 20)
}
