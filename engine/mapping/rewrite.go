package mapping

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/file"
	"github.com/tidwall/gjson"
)

// The rewrite runs as two ast.Walk visitors between parsing and the final
// type check (Compiler.build). ast.Walk visits children before their
// parent, so a member chain is rewritten from its root outwards:
//
//	issue                → get(__budget, issue, "")
//	issue.user           → get(__budget, issue, "user")
//	issue.user.login     → get(__budget, issue, "user.login")
//	issue?.labels?[0]    → get(__budget, issue, "labels.0")
//
// so reading a field costs one gjson lookup and decodes only that value.
// The string-`+` rewrite is a second visitor because it needs the types of
// the calls the first one built.

// docRead describes a get() call the rewrite built.
type docRead struct {
	doc  string
	path string
	// member is true when path was built from member accesses only, so a
	// further .key or [i] may extend it. A path the user wrote in get()
	// may use any gjson syntax and is never extended.
	member bool
}

// rewriter is the first visitor: it turns response member chains into
// get() calls, passes the budget to metered helpers and rejects what the
// language leaves out. It records the first problem; Compile reports it.
type rewriter struct {
	c     *Compiler
	reads map[*ast.CallNode]docRead
	err   *file.Error
}

// Visit implements ast.Visitor.
func (r *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch {
		case n.Value == "$env":
			r.fail(n, "$env is not available; use the names directly")
		case strings.HasPrefix(n.Value, "__"):
			r.fail(n, "unknown name %s", n.Value)
		case r.c.docs[n.Value]:
			r.patchRead(node, docRead{doc: n.Value, member: true}, &ast.StringNode{Value: ""})
		}
	case *ast.MemberNode:
		r.member(node, n)
	case *ast.ChainNode:
		// issue?.a?.b: get() is already nil-safe, so the chain wrapper
		// has nothing left to guard.
		if call, ok := n.Node.(*ast.CallNode); ok {
			if _, mine := r.reads[call]; mine {
				ast.Patch(node, call)
			}
		}
	case *ast.CallNode:
		r.call(node, n)
	case *ast.BuiltinNode:
		if !r.c.kept[n.Name] {
			r.fail(n, "%s", unavailable(n.Name))
		}
		r.pluck(n)
	}
}

// member extends a response read by one constant key or index, and checks
// group names.
func (r *rewriter) member(node *ast.Node, n *ast.MemberNode) {
	if id, ok := n.Node.(*ast.IdentifierNode); ok && r.c.records[id.Value] != nil {
		if s, ok := n.Property.(*ast.StringNode); ok && !r.c.records[id.Value][s.Value] {
			r.fail(n.Property, "unknown %s key %s%s", id.Value, s.Value, r.c.recordHint(id.Value, s.Value))
		}
		return
	}
	if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "groups" {
		if s, ok := n.Property.(*ast.StringNode); ok && !r.c.groups[s.Value] {
			r.fail(n.Property, "unknown group %s%s", s.Value, r.c.groupHint(s.Value))
		}
		return
	}
	call, ok := n.Node.(*ast.CallNode)
	if !ok {
		return
	}
	rd, ok := r.reads[call]
	if !ok {
		return
	}
	if n.Method {
		// JSON values have no methods; expr would fail at run time with
		// a confusing message.
		name := n.Property.String()
		if s, ok := n.Property.(*ast.StringNode); ok {
			name = s.Value
		}
		r.fail(n.Property, "values read from a response have no methods: write f(x), not x.%s()", name)
		return
	}
	if !rd.member {
		return
	}
	key, ok := pathKey(n.Property)
	if !ok {
		// A computed index (issue.labels[i]) stays a normal member
		// access on the decoded value: get(issue, "labels")[i].
		return
	}
	if rd.path != "" {
		key = rd.path + "." + key
	}
	rd.path = key
	r.patchRead(node, rd, &ast.StringNode{Value: key})
}

// pathKey turns a constant property into one escaped gjson path
// component. Negative indexes count from the end in expr but not in
// gjson, and the parser gives them as a unary minus, so they fall back to
// a normal member access like any computed index.
func pathKey(prop ast.Node) (string, bool) {
	switch p := prop.(type) {
	case *ast.StringNode:
		if p.Value == "" {
			return "", false
		}
		return gjson.Escape(p.Value), true
	case *ast.IntegerNode:
		if p.Value < 0 {
			return "", false
		}
		return strconv.Itoa(p.Value), true
	}
	return "", false
}

// pluck narrows map(<response read>, .key) to what it reads: the read
// becomes __getkey(__budget, doc, path, "key"), which decodes each object
// of the list with that one key instead of all of them
// (map(issue.labels, .name) decoded every field of every label into a
// map, issue 11). The predicate reads nothing else of the element, so it
// sees the same values: the key's value, or nil where it is absent.
// Anything else in the list (strings, numbers, nested lists) and a value
// that is not a list decode as get would.
func (r *rewriter) pluck(n *ast.BuiltinNode) {
	if n.Name != "map" || len(n.Arguments) != 2 {
		return
	}
	call, ok := n.Arguments[0].(*ast.CallNode)
	if !ok {
		return
	}
	if _, mine := r.reads[call]; !mine || len(call.Arguments) != 3 {
		return
	}
	pred, ok := n.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return
	}
	m, ok := pred.Node.(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	if p, ok := m.Node.(*ast.PointerNode); !ok || p.Name != "" {
		return
	}
	key, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	k := &ast.StringNode{Value: key.Value}
	k.SetLocation(key.Location())
	call.Callee = ident(getKeyName, call.Callee.Location())
	call.Arguments = append(call.Arguments, k)
	// Extending the read further (a member of map's result) is not a
	// path of it.
	delete(r.reads, call)
}

// call handles calls to the language's helpers.
func (r *rewriter) call(node *ast.Node, n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || !r.c.metered[id.Value] {
		return
	}
	if id.Value == "get" && len(n.Arguments) == 2 {
		// get(issue, "labels.#.name"): the response itself, with the
		// user's gjson path. issue was already rewritten to a read of the
		// whole document; take its response name back.
		if call, ok := n.Arguments[0].(*ast.CallNode); ok {
			if rd, mine := r.reads[call]; mine && rd.member && rd.path == "" {
				rd.member = false
				if s, ok := n.Arguments[1].(*ast.StringNode); ok {
					rd.path = s.Value
				}
				r.patchRead(node, rd, n.Arguments[1])
				return
			}
		}
	}
	n.Arguments = append([]ast.Node{r.budgetArg(n)}, n.Arguments...)
}

// patchRead replaces node with get(__budget, doc, path).
func (r *rewriter) patchRead(node *ast.Node, rd docRead, path ast.Node) {
	loc := (*node).Location()
	doc := &ast.IdentifierNode{Value: rd.doc}
	doc.SetLocation(loc)
	if path.Location() == (file.Location{}) {
		path.SetLocation(loc)
	}
	call := &ast.CallNode{Callee: ident("get", loc), Arguments: []ast.Node{r.budgetArg(*node), doc, path}}
	ast.Patch(node, call)
	r.reads[call] = rd
}

// budgetArg is the hidden budget argument, placed where n stands so that
// runtime errors point at the user's text.
func (r *rewriter) budgetArg(n ast.Node) ast.Node {
	return ident(budgetName, n.Location())
}

// fail records the first problem found.
func (r *rewriter) fail(n ast.Node, format string, args ...any) {
	if r.err == nil {
		r.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

// ident builds an identifier node at loc.
func ident(name string, loc file.Location) *ast.IdentifierNode {
	id := &ast.IdentifierNode{Value: name}
	id.SetLocation(loc)
	return id
}

// Names of the two functions a string `+` becomes. concatName keeps the
// static string type so that "a" + "b" + 1 is still a compile-time error.
const (
	concatName = "__concat"
	addName    = "__add"
)

var stringType = reflect.TypeOf("")

// concatRewriter is the second visitor: it routes every `+` that may join
// strings through a metered helper, because expr's own string addition is
// not counted by the VM's memory budget and doubling a string forty times
// takes only a few dozen nodes (TH-34). Additions of two numbers keep the
// VM's opcode.
type concatRewriter struct {
	// strs are the calls built here whose result is a string.
	strs map[ast.Node]bool
}

// Visit implements ast.Visitor.
func (cr *concatRewriter) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BinaryNode)
	if !ok || n.Operator != "+" {
		return
	}
	lt, rt := cr.typeOf(n.Left), cr.typeOf(n.Right)
	if !maybeString(lt) || !maybeString(rt) {
		return
	}
	name := addName
	if lt.Kind() == reflect.String && rt.Kind() == reflect.String {
		name = concatName
	}
	loc := n.Location()
	call := &ast.CallNode{Callee: ident(name, loc), Arguments: []ast.Node{ident(budgetName, loc), n.Left, n.Right}}
	ast.Patch(node, call)
	if name == concatName {
		// An enclosing `+` must still see a string, so that
		// "a" + "b" + 1 stays a compile-time error.
		cr.strs[call] = true
	}
}

// typeOf is the static type of n as the last check saw it.
func (cr *concatRewriter) typeOf(n ast.Node) reflect.Type {
	if cr.strs[n] {
		return stringType
	}
	return n.Type()
}

// clearCallTypes forgets the types an earlier check gave to calls. expr's
// checker trusts a type already on a CallNode (as if a patcher had set it)
// and then skips the call's arguments, so a stale type would hide errors
// in arguments, such as an unknown name inside upper(...).
type clearCallTypes struct{}

// Visit implements ast.Visitor.
func (clearCallTypes) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.CallNode); ok {
		n.SetNature(nature.Nature{})
	}
}

// maybeString reports whether a value of type t may be a string at run
// time.
func maybeString(t reflect.Type) bool {
	return t != nil && (t.Kind() == reflect.String || t.Kind() == reflect.Interface)
}
