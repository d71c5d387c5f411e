// Package mapping is the expression language operators write in YAML to
// turn upstream JSON responses into unfurl attribute values. It is
// expr-lang (https://expr-lang.org) with a typed environment, a trimmed
// function set and a few helpers. Every expression is compiled when the
// configuration loads (STYLE.md rule 1), so a typo is a config error with
// its file:line:col, never a failed unfurl.
//
// # Names
//
//   - Each response, by its request name: issue, repo, ... A missing
//     optional response is empty: every read from it gives nil.
//   - groups: the URL's named captures, as strings (groups.number). Only
//     the regex's own group names compile.
//   - uri: the link being unfurled.
//
// Any other name is a compile error, with a suggestion when it looks like
// a typo: "unknown name isue (did you mean issue?)".
//
// # Reading responses
//
// Member access on a response reads JSON lazily with gjson: the compiler
// rewrites issue.user.login, issue.labels[0].name, issue["odd.key"] and
// issue?.milestone?.title into one path lookup ("user.login",
// "labels.0.name", "odd\.key") so that nothing is decoded beyond the value
// read. Strings come out as strings, numbers as floats, arrays as lists and
// objects as maps. A missing field is nil, not an error, so
// default(issue.milestone.title, "none") and issue.milestone.title ?? "none"
// both work, and issue == nil tests whether an optional response is empty.
//
// A computed index, as in issue.labels[i] or issue.labels[-1], reads
// issue.labels once and indexes the decoded list as expr normally does: an
// index out of range there is an error, so guard it or use first/last.
//
// get(issue, "labels.#.name") takes any gjson path
// (https://github.com/tidwall/gjson/blob/master/SYNTAX.md): queries,
// modifiers, wildcards. On a decoded map or list, get(m, key) reads one key
// or index and gives nil when it is missing.
//
// # Language
//
// expr's operators and syntax are all there: arithmetic, comparison,
// and/or/not, ?:, ??, in, contains, startsWith, endsWith, matches, ranges
// (1..3), slices, let, if/else, list and map literals, pipes
// (issue.labels | map(.name) | join(", ")). Adding a string and nil treats
// nil as "".
//
// Functions kept from expr: len, trim, trimPrefix, trimSuffix, indexOf,
// hasPrefix, hasSuffix, map, filter, all, any, none, one, count, find,
// sum, first, last, sort, min, max, int, float, abs, round, floor, ceil.
// The rest of expr's builtins are not available: now() and date parsing
// read the clock or the local time zone, and repeat, toJSON and friends
// are unbounded.
//
// Replacements and helpers (nil in, nil or "" out, where noted):
//
//	upper(s), lower(s), replace(s, old, new), split(s, sep)
//	    as in expr; nil reads as "", and splitting "" gives an empty list.
//	join(list, sep)
//	    items are strings, numbers or bools; nil and "" items are skipped.
//	string(v)
//	    scalars as written (42, not 42.0), nil as "", lists and maps as JSON.
//	keys(m), values(m)
//	    in sorted key order, so the output is the same on every run.
//	date(v)
//	    "YYYY-MM-DD" from an RFC 3339 timestamp (the day as written), a
//	    date, or unix seconds (UTC); nil and "" give nil; anything else is
//	    an error.
//	datetime(v)
//	    "2006-01-02T15:04:05.000Z", in UTC (protocol 6.2); same inputs.
//	color(hex)
//	    {"r": int, "g": int, "b": int} from "#rgb", "#rrggbb" or "rrggbb".
//	truncate(s, n)
//	    at most n characters, the last one "…" when cut.
//	default(v, fallback)
//	    fallback when v is nil, "", an empty list or an empty map.
//	pluralize(n, singular[, plural])
//	    "1 comment", "3 comments"; plural defaults to singular + "s".
//
// Examples:
//
//	issue.title
//	"#" + groups.number + " " + truncate(issue.title, 80)
//	join(map(issue.labels, .name), ", ")
//	pluralize(issue.comments, "comment")
//	issue.state == "closed" ? "Closed " + date(issue.closed_at) : "Open"
//
// # Limits (TH-34)
//
// An expression has at most MaxNodes syntax nodes. Each evaluation runs on
// a fresh VM with an explicit memory budget (MemoryBudget) plus a budget of
// MaxEvalBytes for the strings it builds and the JSON it decodes: string
// `+`, replace, join, split, upper, lower, string, keys, values, truncate
// and response reads are charged before they allocate. Exceeding either
// budget is an evaluation error (errors.Is ErrBudget), not a crash.
// Helpers are pure: none reads the clock, the environment or the network.
// What remains unbounded is CPU time (expr has no instruction budget) and
// the lists built by map and filter over large inputs, which are bounded
// by the response size cap.
package mapping
