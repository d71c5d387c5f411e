package mapping

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDocMissing: a path that reads nothing says which part is absent,
// null, out of range or not an object, and lists the nearest fields that
// exist at the deepest level reached.
func TestDocMissing(t *testing.T) {
	t.Parallel()
	issue := loadIssue(t)
	tests := []struct {
		name string
		doc  Doc
		path string
		want string
	}{
		{
			name: "typo at the top",
			doc:  issue, path: "asignees",
			want: `issue has no field "asignees" (did you mean "assignees"?); nearest fields there: "assignees", "assignee", "labels", "state", "title"`,
		},
		{
			name: "typo one level down",
			doc:  issue, path: "user.logn",
			want: `issue.user has no field "logn" (did you mean "login"?); nearest fields there: "login", "id", "type", "url", "node_id"`,
		},
		{
			name: "nothing close",
			doc:  issue, path: "reactions.zzzzzzzzzzzz",
			want: `issue.reactions has no field "zzzzzzzzzzzz"; nearest fields there: "+1", "-1", "confused", "eyes", "heart"`,
		},
		{name: "null on the way", doc: issue, path: "milestone.title", want: `issue.milestone is null`},
		{name: "null at the end", doc: issue, path: "closed_at", want: `issue.closed_at is null`},
		{name: "index out of range", doc: issue, path: "labels.5.name", want: `issue.labels has 3 items, so there is no item 5`},
		{
			name: "key on a list",
			doc:  issue, path: "labels.name",
			want: `issue.labels is a list of 3, which has no field "name"; read one item (issue.labels.0.name) or all of them (issue.labels.#.name)`,
		},
		{name: "key on a string", doc: issue, path: "title.text", want: `issue.title is a string, which has no field "text"`},
		{name: "present", doc: issue, path: "user.login", want: ""},
		{name: "present but empty", doc: issue, path: "user.gravatar_id", want: ""},
		{name: "gjson syntax is not taken apart", doc: issue, path: "labels.#.nme", want: ""},
		{name: "empty response", doc: Doc{}, path: "title", want: `the response issue is empty`},
		{name: "empty object", doc: mustDoc(t, `{"a": {}}`), path: "a.b", want: `issue.a has no field "b": it is an empty object`},
		{name: "few fields are all listed", doc: mustDoc(t, `{"name": 1, "id": 2}`), path: "nmae", want: `issue has no field "nmae" (did you mean "name"?); its fields: "name", "id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.doc.Missing("issue", tc.path))
		})
	}
}

// TestProgramMissing: an expression's empty value is explained by the
// first response read that finds nothing.
func TestProgramMissing(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	tests := []struct {
		src  string
		want string
	}{
		{src: `issue.user.login + " " + default(issue.asignee.login, "")`, want: `issue has no field "asignee" (did you mean "assignee"?); nearest fields there: "assignee", "assignees", "state", "title", "user"`},
		{src: `upper(issue.milestone.title)`, want: `issue.milestone is null`},
		{src: `opt.title`, want: `the response opt is empty`},
		{src: `get(issue, "user.logn")`, want: `issue.user has no field "logn" (did you mean "login"?); nearest fields there: "login", "id", "type", "url", "node_id"`},
		{src: `join(map(issue.lables, .name), ", ")`, want: `issue has no field "lables" (did you mean "labels"?); nearest fields there: "labels", "locked", "title", "body", "number"`},
		{src: `issue.user.login`, want: ""},
		{src: `groups.number`, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, mustCompile(t, tc.src).Missing(env))
		})
	}
}

func mustDoc(tb testing.TB, s string) Doc {
	tb.Helper()
	d, err := NewDoc([]byte(s))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
