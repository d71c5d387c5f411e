package mapping

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHelpers runs every helper through the language, good and bad inputs,
// against the issue fixture.
func TestHelpers(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	tests := []struct {
		name    string
		src     string
		want    any
		wantErr string // the EvalError's message
	}{
		// get
		{name: "get gjson path", src: `get(issue, "labels.#.name")`, want: []any{"bug", "good first issue", "help wanted"}},
		{name: "get gjson query", src: `get(issue, "labels.#(name==\"bug\").color")`, want: "f29513"},
		{name: "get computed path", src: `get(issue, "user" + "." + "login")`, want: "octocat"},
		{name: "get missing", src: `get(issue, "nope.nope")`, want: nil},
		{name: "get from map", src: `get(issue.user, "login")`, want: "octocat"},
		{name: "get from map missing", src: `get(issue.user, "nope")`, want: nil},
		{name: "get from list", src: `get(issue.labels, -1).name`, want: "help wanted"},
		{name: "get from list out of range", src: `get(issue.labels, 9)`, want: nil},
		{name: "get from groups", src: `get(groups, "number")`, want: "1347"},
		{name: "get from nil", src: `get(issue.milestone, "title")`, want: nil},
		{name: "get from a string", src: `get(issue.title, 1)`, wantErr: "get: cannot read from a string"},
		{name: "get path must be a string", src: `get(issue, issue.number)`, wantErr: "get: a response path must be a string, got a number"},

		// upper, lower
		{name: "upper", src: `upper(issue.state)`, want: "OPEN"},
		{name: "lower", src: `lower("ÀB")`, want: "àb"},
		{name: "upper nil", src: `upper(issue.milestone)`, want: ""},
		{name: "upper number", src: `upper(issue.number)`, wantErr: "upper/lower: want a string, got a number"},

		// replace, split
		{name: "replace", src: `replace(issue.title, "bug", "fault")`, want: "Found a fault in the link preview renderer"},
		{name: "replace empty old", src: `replace("ab", "", "-")`, want: "-a-b-"},
		{name: "replace nil", src: `replace(issue.milestone, "a", "b")`, want: ""},
		{name: "split", src: `split(groups.repo, "-")`, want: []string{"hello", "world"}},
		{name: "split empty", src: `split(issue.milestone, ",")`, want: []string{}},
		{name: "split runes", src: `split("héy", "")`, want: []string{"h", "é", "y"}},

		// join
		{name: "join", src: `join(map(issue.labels, .name), ", ")`, want: "bug, good first issue, help wanted"},
		{name: "join pipe", src: `issue.labels | map(.name) | join(" · ")`, want: "bug · good first issue · help wanted"},
		{name: "join skips nil and empty", src: `join([issue.state, issue.milestone, "", "3"], " · ")`, want: "open · 3"},
		{name: "join numbers and bools", src: `join([issue.number, 1.5, true])`, want: "13471.5true"},
		{name: "join split", src: `join(split("a,b", ","), "+")`, want: "a+b"},
		{name: "join nil", src: `join(issue.milestone, ",")`, want: ""},
		{name: "join a map item", src: `join([issue.user], ",")`, wantErr: "join: item 0: cannot write a map as text"},
		{name: "join not a list", src: `join(issue.title, ",")`, wantErr: "join: want a list, got a string"},

		// base64: standard alphabet with padding, as HTTP Basic wants
		{name: "base64", src: `base64("mia@example.com:ATATT3xFfGF0")`, want: "bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="},
		{name: "base64 padding and /", src: `base64("???>")`, want: "Pz8/Pg=="},
		{name: "base64 nil", src: `base64(issue.milestone)`, want: ""},
		{name: "base64 number", src: `base64(issue.number)`, wantErr: "base64: want a string, got a number"},

		// string
		{name: "string integral number", src: `string(issue.number)`, want: "1347"},
		{name: "string fraction", src: `string(1.25)`, want: "1.25"},
		{name: "string nil", src: `string(issue.milestone)`, want: ""},
		{name: "string bool", src: `string(issue.locked)`, want: "false"},
		{name: "string list as JSON", src: `string(get(issue, "labels.#.name"))`, want: `["bug","good first issue","help wanted"]`},
		{name: "string map as JSON", src: `string({"a": "<b>"})`, want: `{"a":"<b>"}`},

		// keys, values
		{name: "keys sorted", src: `keys(issue.sub_issues_summary)`, want: []any{"completed", "percent_completed", "total"}},
		{name: "values in key order", src: `values(issue.sub_issues_summary)`, want: []any{1.0, 50.0, 2.0}},
		{name: "keys of groups", src: `keys(groups)`, want: []any{"number", "owner", "repo"}},
		{name: "keys nil", src: `keys(issue.milestone)`, want: []any{}},
		{name: "keys of a list", src: `keys(issue.labels)`, wantErr: "keys: want a map, got a list"},
		{name: "values of a string", src: `values(issue.title)`, wantErr: "values: want a map, got a string"},

		// truncate
		{name: "truncate", src: `truncate(issue.title, 10)`, want: "Found a b…"},
		{name: "truncate short", src: `truncate(issue.state, 10)`, want: "open"},
		{name: "truncate with a JSON number", src: `truncate(issue.title, issue.comments)`, want: "Fo…"},
		{name: "truncate nil", src: `truncate(issue.milestone, 10)`, want: nil},
		{name: "truncate a number", src: `truncate(issue.number, 2)`, wantErr: "truncate: want a string, got a number"},
		{name: "truncate by a fraction", src: `truncate(issue.title, issue.sub_issues_summary.percent_completed * 0.13)`, wantErr: "truncate: the length must be an integer, got a number"},

		// pluralize
		{name: "pluralize many", src: `pluralize(issue.comments, "comment")`, want: "3 comments"},
		{name: "pluralize one", src: `pluralize(1, "comment")`, want: "1 comment"},
		{name: "pluralize zero", src: `pluralize(0, "comment")`, want: "0 comments"},
		{name: "pluralize custom plural", src: `pluralize(len(issue.assignees) + 1, "person", "people")`, want: "2 people"},
		{name: "pluralize fraction", src: `pluralize(1.5, "point")`, want: "1.5 points"},
		{name: "pluralize nil", src: `pluralize(issue.milestone, "x")`, wantErr: "pluralize: want a number, got a nil"},
		{name: "pluralize a string", src: `pluralize(issue.title, "x")`, wantErr: "pluralize: want a number, got a string"},

		// date, datetime
		{name: "date", src: `date(issue.created_at)`, want: "2024-04-22"},
		{name: "date unix", src: `date(1713792828)`, want: "2024-04-22"},
		{name: "date nil passes through", src: `date(issue.closed_at)`, want: nil},
		{name: "date empty passes through", src: `date("")`, want: nil},
		{name: "date unparsable", src: `date(issue.title)`, wantErr: `date: cannot read "Found a bug in the link preview renderer" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`},
		{name: "datetime", src: `datetime(issue.updated_at)`, want: "2024-04-22T13:33:48.123Z"},
		{name: "datetime nil", src: `datetime(issue.closed_at)`, want: nil},
		{name: "datetime bool", src: `datetime(issue.locked)`, wantErr: "datetime: cannot read a bool as a time"},

		// color
		{name: "color", src: `color(issue.labels[0].color)`, want: map[string]any{"r": 242, "g": 149, "b": 19}},
		{name: "color short", src: `color("#fff")`, want: map[string]any{"r": 255, "g": 255, "b": 255}},
		{name: "color nil", src: `color(issue.milestone)`, want: nil},
		{name: "color bad", src: `color(issue.state)`, wantErr: `color: "open" is not a hex color like #rrggbb, rrggbb or #rgb`},

		// default
		{name: "default nil", src: `default(issue.milestone.title, "none")`, want: "none"},
		{name: "default empty string", src: `default(issue.gravatar, "x")`, want: "x"},
		{name: "default empty list", src: `default(filter(issue.labels, .name == "nope"), "no labels")`, want: "no labels"},
		{name: "default empty map", src: `default({}, "empty")`, want: "empty"},
		{name: "default keeps zero", src: `default(issue.reactions["-1"], 7)`, want: 0.0},
		{name: "default keeps false", src: `default(issue.locked, true)`, want: false},
		{name: "default keeps value", src: `default(issue.state, "x")`, want: "open"},

		// +
		{name: "concat", src: `"#" + groups.number + " " + issue.title`, want: "#1347 Found a bug in the link preview renderer"},
		{name: "concat nil is empty", src: `issue.title + issue.milestone`, want: "Found a bug in the link preview renderer"},
		{name: "numbers still add", src: `issue.comments + issue.number`, want: 1350.0},
		{name: "int plus float", src: `1 + issue.comments`, want: 4.0},
		{name: "list elements add", src: `map(issue.labels, #.name + "!")[0]`, want: "bug!"},
		{name: "string plus number at run time", src: `issue.title + issue.number`, wantErr: "invalid operation: string + float64"},
		{name: "nil plus nil", src: `issue.milestone + issue.closed_at`, wantErr: "invalid operation: <nil> + <nil>"},

		// kept builtins
		{name: "len", src: `len(issue.labels)`, want: 3},
		{name: "trim", src: `trim("  x ")`, want: "x"},
		{name: "first and last", src: `first(issue.labels).name + last(issue.labels).name`, want: "bughelp wanted"},
		{name: "count", src: `count(issue.labels, .default)`, want: 1},
		{name: "sort", src: `sort(get(issue, "labels.#.name"), "desc")[0]`, want: "help wanted"},
		{name: "max", src: `max(issue.comments, 10)`, want: 10},
		{name: "round", src: `round(issue.sub_issues_summary.percent_completed / 3)`, want: 17.0},
		{name: "in", src: `"bug" in get(issue, "labels.#.name")`, want: true},
		{name: "matches", src: `issue.title matches "(?i)^found"`, want: true},
		{name: "ternary", src: `issue.state == "closed" ? "Closed" : "Open"`, want: "Open"},
		{name: "nil coalescing", src: `issue.milestone.title ?? "none"`, want: "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tc.src)
			got, err := p.Eval(env)
			if tc.wantErr != "" {
				var ee *EvalError
				require.ErrorAs(t, err, &ee)
				assert.Equal(t, tc.wantErr, ee.Msg)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestIsEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want bool
	}{
		{"nil", nil, true},
		{"empty string", "", true},
		{"empty list", []any{}, true},
		{"empty string list", []string{}, true},
		{"empty map", map[string]any{}, true},
		{"empty groups", map[string]string{}, true},
		{"nil pointer", (*budget)(nil), true},
		{"zero", 0, false},
		{"false", false, false},
		{"space", " ", false},
		{"list", []any{nil}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, isEmpty(tc.in))
		})
	}
}
