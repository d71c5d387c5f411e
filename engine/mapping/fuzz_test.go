package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/unfurld/unfurld/engine/config"
)

// FuzzCompileEval compiles arbitrary text against a fixed environment and
// evaluates whatever compiles (TH-34): neither step may panic, and every
// failure must be the documented error type. Compile and Eval both
// recover panics, so the check is that no recovery message ever shows up.
func FuzzCompileEval(f *testing.F) {
	for _, seed := range []string{
		`issue.user.login`,
		`issue?.milestone?.title ?? "none"`,
		`"#" + groups.number + " " + truncate(issue.title, 30)`,
		`join(map(issue.labels, .name), ", ")`,
		`get(issue, "labels.#.name")`,
		`issue["odd.key"] + issue.labels[0].name`,
		`let i = 1; issue.labels[i].name`,
		`date(issue.created_at) + " " + datetime(issue.updated_at)`,
		`color(issue.labels[0].color)`,
		`pluralize(issue.comments, "comment")`,
		`default(issue.milestone, {})`,
		`replace(upper(issue.body), "", "-")`,
		`keys(issue.reactions) | filter(# startsWith "h") | sort()`,
		`issue.state == "open" ? 1..3 : [uri]`,
		`split(uri, "/")[-1]`,
		`string({"a": [1, nil, true]})`,
	} {
		f.Add(seed)
	}
	c := newTestCompiler()
	env := testEnv(f)
	pos := config.Pos{File: "fuzz.yaml", Line: 1, Col: 1}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := c.Compile(src, pos, "fuzz")
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("compile %q: error of type %T: %v", src, err, err)
			}
			if strings.Contains(ce.Msg, "cannot compile the expression") {
				t.Fatalf("compile %q panicked: %v", src, err)
			}
			return
		}
		if _, err := p.Eval(env); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("eval %q: error of type %T: %v", src, err, err)
			}
		}
	})
}
