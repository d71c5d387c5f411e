package mapping

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

// expressionsDoc is where docs/expressions.md lists the functions and what they
// take.
const expressionsDoc = "docs/expressions.md#expressions"

// param is one parameter of a function, as the user reads it.
type param struct {
	name string
	// kind is what the parameter takes: number (int or float), int,
	// string, list, map or any.
	kind     string
	optional bool
}

// signatures are the parameters of the functions an expression may call,
// for messages only: the type checker works from the helpers' Go types.
// It holds the helpers and the kept builtins a user passes plain values
// to; the hidden budget argument is not a parameter.
func signatures() map[string][]param {
	p := func(name, kind string) param { return param{name: name, kind: kind} }
	opt := func(name, kind string) param { return param{name: name, kind: kind, optional: true} }
	return map[string][]param{
		"get":        {p("value", "any"), p("path", "any")},
		"upper":      {p("s", "string")},
		"lower":      {p("s", "string")},
		"replace":    {p("s", "string"), p("old", "string"), p("new", "string")},
		"split":      {p("s", "string"), p("sep", "string")},
		"join":       {p("list", "list"), opt("sep", "string")},
		"string":     {p("v", "any")},
		"keys":       {p("m", "map")},
		"values":     {p("m", "map")},
		"truncate":   {p("s", "string"), p("n", "int")},
		"pluralize":  {p("n", "number"), p("singular", "string"), opt("plural", "string")},
		"date":       {p("v", "any")},
		"datetime":   {p("v", "any")},
		"color":      {p("hex", "string")},
		"default":    {p("v", "any"), p("fallback", "any")},
		"len":        {p("v", "any")},
		"trim":       {p("s", "string"), opt("chars", "string")},
		"trimPrefix": {p("s", "string"), p("prefix", "string")},
		"trimSuffix": {p("s", "string"), p("suffix", "string")},
		"indexOf":    {p("s", "string"), p("sub", "string")},
		"hasPrefix":  {p("s", "string"), p("prefix", "string")},
		"hasSuffix":  {p("s", "string"), p("suffix", "string")},
		"first":      {p("list", "list")},
		"last":       {p("list", "list")},
		"int":        {p("v", "any")},
		"float":      {p("v", "any")},
		"abs":        {p("n", "number")},
		"round":      {p("n", "number")},
		"floor":      {p("n", "number")},
		"ceil":       {p("n", "number")},
		"map":        {p("list", "list"), p("predicate", "any")},
		"filter":     {p("list", "list"), p("predicate", "any")},
		"all":        {p("list", "list"), p("predicate", "any")},
		"any":        {p("list", "list"), p("predicate", "any")},
		"none":       {p("list", "list"), p("predicate", "any")},
		"one":        {p("list", "list"), p("predicate", "any")},
		"count":      {p("list", "list"), opt("predicate", "any")},
		"find":       {p("list", "list"), p("predicate", "any")},
		"sum":        {p("list", "list"), opt("predicate", "any")},
		"sort":       {p("list", "list"), opt("order", "string")},
	}
}

// callErrorRE matches expr's messages about a call's arguments. They name
// the function but neither what it takes nor what it was given, and with
// overloads the count is the last overload tried: pluralize("many", 3)
// said "not enough arguments".
var callErrorRE = regexp.MustCompile(`^(?:not enough arguments to call|too many arguments to call|cannot use .+? as argument \(type .+?\) to call) (\w+)$|^invalid number of arguments \(expected \d+, got \d+\)$`)

// explainCall rewrites fe's message when it is about a call's arguments:
// it names the function, the parameters it takes and the types it was
// given, and notices two swapped arguments. It leaves other messages
// alone. tree is the checked tree, whose argument nodes carry types.
func explainCall(tree ast.Node, fe *file.Error) {
	m := callErrorRE.FindStringSubmatch(strings.TrimSpace(fe.Message))
	if m == nil {
		return
	}
	name, args := callAt(tree, m[1], fe.From)
	if name == "" {
		return
	}
	fe.Message = callMessage(name, args)
}

// callMessage says what the function name takes and what args are.
func callMessage(name string, args []ast.Node) string {
	if len(args) > 0 {
		if id, ok := args[0].(*ast.IdentifierNode); ok && id.Value == budgetName {
			args = args[1:]
		}
	}
	given := make([]string, len(args))
	for i, a := range args {
		given[i] = typeOf(a.Type())
	}
	params, known := signatures()[name]
	if !known {
		return fmt.Sprintf("%s cannot take (%s)", name, strings.Join(given, ", "))
	}
	msg := fmt.Sprintf("%s takes %s, got (%s)", name, usage(params), strings.Join(given, ", "))
	if len(given) == 2 && !fits(params, given) && fits(params, []string{given[1], given[0]}) {
		msg += "; are the two arguments swapped?"
	}
	return msg + " (see " + expressionsDoc + ")"
}

// checkCalls finds a call of one of the helpers (by name) whose
// arguments have static types the helper refuses at run time. The type
// checker lets them through because the helpers' Go parameters are `any`
// (a response value's type is known only then), so without this
// pluralize("comment", issue.comments) would compile and fail on every
// unfurl. Arguments of unknown type are left to run time.
func checkCalls(tree ast.Node, helpers map[string]bool) *file.Error {
	c := &callChecker{helpers: helpers, sigs: signatures()}
	ast.Walk(&tree, c)
	return c.err
}

type callChecker struct {
	helpers map[string]bool
	sigs    map[string][]param
	err     *file.Error
}

// Visit implements ast.Visitor.
func (c *callChecker) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok || c.err != nil {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !c.helpers[id.Value] {
		return
	}
	args := call.Arguments
	if len(args) > 0 {
		if b, ok := args[0].(*ast.IdentifierNode); ok && b.Value == budgetName {
			args = args[1:]
		}
	}
	params := c.sigs[id.Value]
	for i, a := range args {
		if i < len(params) && !suits(params[i].kind, typeOf(a.Type())) {
			c.err = &file.Error{Location: call.Location(), Message: callMessage(id.Value, call.Arguments)}
			return
		}
	}
}

// atLeastRE is the parser's message for a predicate builtin (map, filter,
// ...) called without its predicate; the parser has no tree to give.
var atLeastRE = regexp.MustCompile(`^expected at least \d+ arguments?$`)

// explainParse rewrites the parser's argument-count message: it names the
// function, found in src as the name before the innermost parenthesis
// still open at the error, and what it takes.
func explainParse(src string, fe *file.Error) {
	if !atLeastRE.MatchString(strings.TrimSpace(fe.Message)) || fe.From > len(src) {
		return
	}
	depth := 0
	for i := min(fe.From, len(src)-1); i >= 0; i-- {
		switch src[i] {
		case ')':
			if i < fe.From {
				depth++
			}
		case '(':
			if depth > 0 {
				depth--
				continue
			}
			j := i
			for j > 0 && (isIdentByte(src[j-1])) {
				j--
			}
			name := src[j:i]
			if params, ok := signatures()[name]; ok {
				fe.Message = fmt.Sprintf("%s takes %s (see %s)", name, usage(params), expressionsDoc)
			}
			return
		}
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// callAt finds the call of name (any call when name is "") that holds
// offset: the one starting last at or before it, which for nested calls
// is the innermost. It returns the function's name and the arguments, or
// "" when there is no such call. expr parses its builtins (len, trim...)
// as BuiltinNode and everything else as CallNode.
func callAt(tree ast.Node, name string, offset int) (string, []ast.Node) {
	f := &callFinder{name: name, offset: offset, from: -1}
	ast.Walk(&tree, f)
	return f.found, f.args
}

type callFinder struct {
	name   string
	offset int
	found  string
	args   []ast.Node
	from   int
}

// Visit implements ast.Visitor.
func (f *callFinder) Visit(node *ast.Node) {
	var name string
	var args []ast.Node
	switch n := (*node).(type) {
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		name, args = id.Value, n.Arguments
	case *ast.BuiltinNode:
		name, args = n.Name, n.Arguments
	default:
		return
	}
	if (f.name != "" && name != f.name) || strings.HasPrefix(name, "__") {
		return
	}
	if from := (*node).Location().From; from <= f.offset && from >= f.from {
		f.found, f.args, f.from = name, args, from
	}
}

// usage writes params as "(n number, singular string[, plural string])".
func usage(params []param) string {
	var b strings.Builder
	b.WriteString("(")
	for i, p := range params {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if p.optional {
			b.WriteString("[" + sep)
		} else {
			b.WriteString(sep)
		}
		b.WriteString(p.name + " " + p.kind)
	}
	for _, p := range params {
		if p.optional {
			b.WriteString("]")
		}
	}
	b.WriteString(")")
	return b.String()
}

// fits reports whether arguments of the given types suit params: the
// count, and each type where both are known.
func fits(params []param, given []string) bool {
	need := 0
	for _, p := range params {
		if !p.optional {
			need++
		}
	}
	if len(given) < need || len(given) > len(params) {
		return false
	}
	for i, g := range given {
		if !suits(params[i].kind, g) {
			return false
		}
	}
	return true
}

// suits reports whether a value of type given may stand for a parameter
// of kind.
func suits(kind, given string) bool {
	if kind == "any" || given == "any" || given == "nil" {
		return true
	}
	switch kind {
	case "number":
		return given == "int" || given == "float"
	default:
		return kind == given
	}
}

// typeOf names a checked node's type as the user reads it; a value read
// from a response has no static type and reads "any".
func typeOf(t reflect.Type) string {
	if t == nil {
		return "any"
	}
	switch t.Kind() {
	case reflect.Interface:
		return "any"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "map"
	}
	return t.String()
}
