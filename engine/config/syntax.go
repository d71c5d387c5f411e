package config

import (
	"bytes"
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// yaml.v3 places a parser error at the enclosing collection rather than at
// the line that breaks it: it prints the collection's 0-based start line
// (libyaml's context mark) where it means the problem (the problem mark),
// so a list item indented wrong 15 lines down is reported one line above
// the list. Its maintained successor, go.yaml.in/yaml/v3, shares the
// parser and prints the same line, and neither exposes the problem mark,
// so the loader finds the line itself.

// problemLine returns the 1-based line where data's YAML syntax error
// starts, found as the shortest run of leading lines that already fails
// with the same message msg; ok is false when that is no further down
// than reported, the line yaml printed. Only the error path pays for it:
// a binary search, so at most a few dozen parses of the file.
func problemLine(data []byte, msg string, reported int) (line int, ok bool) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	failsSame := func(n int) bool {
		var doc yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &doc)
		return err != nil && err.Error() == msg
	}
	// Shorter prefixes parse, or fail differently (cut inside a flow
	// collection or a quoted scalar); from the broken line on, every
	// prefix fails as the whole file does.
	n := sort.Search(len(lines)+1, failsSame)
	if n > len(lines) || n <= reported || !failsSame(n) || failsSame(n-1) {
		return 0, false
	}
	return n, true
}

// indentCol is the 1-based column of the first character of line (1-based)
// of data that is not a space.
func indentCol(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	return len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " ")) + 1
}

// keyCol is the 1-based column of the first key on line (1-based) of
// data: after the indentation and any "- " that opens a list item.
func keyCol(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	rest := bytes.TrimLeft(l, " ")
	for bytes.HasPrefix(rest, []byte("- ")) {
		rest = bytes.TrimLeft(rest[1:], " ")
	}
	return len(l) - len(rest) + 1
}

// structureHint explains the messages whose line yaml.v3 gets wrong,
// given the line of the enclosing collection (start) and the line found
// (line).
func structureHint(data []byte, msg string, start, line int) string {
	switch msg {
	case "did not find expected '-' indicator":
		return fmt.Sprintf("this line does not continue the list that starts on line %d, whose items begin with '-' at column %d; check its indentation", start, indentCol(data, start))
	case "did not find expected key":
		return fmt.Sprintf("this line does not continue the mapping that starts on line %d, whose keys stand at column %d; check its indentation", start, keyCol(data, start))
	case "did not find expected ',' or '}'":
		return fmt.Sprintf("a ',' or the closing '}' of the {...} opened on line %d is missing", line)
	case "did not find expected ',' or ']'":
		return fmt.Sprintf("a ',' or the closing ']' of the [...] opened on line %d is missing", line)
	}
	if start == line {
		return ""
	}
	return fmt.Sprintf("inside the collection that starts on line %d", start)
}
