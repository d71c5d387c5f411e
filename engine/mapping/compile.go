package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/unfurld/unfurld/engine/config"
)

// Limits of one expression (TH-34). They are constants rather than
// settings: attribute expressions are small, and a limit an operator can
// raise is a limit an operator can remove by mistake.
const (
	// MaxNodes caps the syntax tree of one expression; expr's default is
	// 10 000.
	MaxNodes = 2000
	// MemoryBudget is the expr VM's budget for one evaluation, in the
	// VM's units (list and map elements it builds, range lengths).
	MemoryBudget = 100_000
	// MaxEvalBytes caps the bytes one evaluation may spend on strings it
	// builds and JSON it decodes (see budget). Responses are capped at a
	// few MiB, so this leaves room for several full copies.
	MaxEvalBytes = 16 << 20
)

// Env is what one evaluation sees.
type Env struct {
	// URI is the link being unfurled.
	URI string
	// Groups are the pattern's named captures.
	Groups map[string]string
	// Docs are the responses by request name; a missing name reads as an
	// empty response.
	Docs map[string]Doc
	// Records are the string maps of a NewRecordCompiler program by name,
	// e.g. the credential's fields; a missing record or key reads as nil.
	Records map[string]map[string]string
}

// Evaluator is what an attribute mapping runs: a Program or a Path.
type Evaluator interface {
	// Eval computes a value from env.
	Eval(env *Env) (any, error)
}

var (
	_ Evaluator = (*Program)(nil)
	_ Evaluator = (*Path)(nil)
)

// Compiler compiles expressions for one pattern: it knows the response
// names and group names, so that any other name fails at load time.
type Compiler struct {
	docs   map[string]bool
	groups map[string]bool
	// records are the string maps a program reads by name, each with
	// the keys it may use (NewRecordCompiler).
	records map[string]map[string]bool
	kept    map[string]bool // expr builtins left enabled
	metered map[string]bool // helpers that take the hidden budget
	// names are the names an expression may use, for suggestions.
	names []string
	opts  []expr.Option
	// reserved lists response names that collide with the language.
	reserved []string
	// helperNames are the helpers' names (not expr's builtins), whose
	// arguments checkCalls checks.
	helperNames map[string]bool
}

// NewCompiler returns a compiler for a pattern whose requests are named
// docNames and whose regex has the named groups groupNames. A response
// name for which IsReserved is true makes every Compile fail; callers
// should report such names where the request is declared.
func NewCompiler(docNames, groupNames []string) *Compiler {
	return newCompiler(docNames, groupNames, nil)
}

// NewRecordCompiler returns a compiler for expressions over string maps
// only, such as upstream.auth.value over the credential's fields and the
// operator's secrets: records maps each name to the keys it has, and any
// other key of a record fails at compile time, as an unknown group does.
// Such expressions read no response, no group and no uri.
func NewRecordCompiler(records map[string][]string) *Compiler {
	return newCompiler(nil, nil, records)
}

func newCompiler(docNames, groupNames []string, records map[string][]string) *Compiler {
	c := &Compiler{
		records: make(map[string]map[string]bool, len(records)),
		docs:    make(map[string]bool, len(docNames)),
		groups:  make(map[string]bool, len(groupNames)),
		kept:    make(map[string]bool, len(keptBuiltins)),
		metered: make(map[string]bool),
	}
	// The typed environment: expr.Env makes every other name a compile
	// error. The values only give types; Eval supplies the real ones.
	env := map[string]any{budgetName: (*budget)(nil)}
	if records == nil {
		env["groups"], env["uri"] = map[string]string{}, ""
		c.names = append(c.names, "groups", "uri")
	}
	for name, keys := range records {
		known := make(map[string]bool, len(keys))
		for _, k := range keys {
			known[k] = true
		}
		c.records[name] = known
		env[name] = map[string]string{}
		c.names = append(c.names, name)
	}
	for _, d := range docNames {
		if IsReserved(d) {
			c.reserved = append(c.reserved, d)
			continue
		}
		c.docs[d] = true
		env[d] = Doc{}
		c.names = append(c.names, d)
	}
	for _, g := range groupNames {
		c.groups[g] = true
	}
	c.opts = []expr.Option{expr.Env(env), expr.MaxNodes(MaxNodes), expr.DisableAllBuiltins()}
	for _, name := range keptBuiltins {
		c.kept[name] = true
		c.names = append(c.names, name)
		c.opts = append(c.opts, expr.EnableBuiltin(name))
	}
	c.helperNames = make(map[string]bool)
	for _, h := range helpers() {
		c.helperNames[h.name] = true
		c.opts = append(c.opts, h.option())
		if h.metered {
			c.metered[h.name] = true
		}
		if !strings.HasPrefix(h.name, "__") {
			c.names = append(c.names, h.name)
		}
	}
	sort.Strings(c.names)
	return c
}

// keywords are the words expr's lexer reserves.
var keywords = []string{
	"true", "false", "nil", "not", "and", "or", "in", "matches", "contains",
	"startsWith", "endsWith", "let", "if", "else",
}

// IsReserved reports whether name cannot be a response name because the
// language already uses it: groups, uri, a keyword, a function name
// (including expr builtins that are not available), or a name starting
// with "$" or "__".
func IsReserved(name string) bool {
	if name == "groups" || name == "uri" || strings.HasPrefix(name, "$") || strings.HasPrefix(name, "__") {
		return true
	}
	if _, ok := builtin.Index[name]; ok {
		return true
	}
	for _, k := range keywords {
		if name == k {
			return true
		}
	}
	for _, h := range helpers() {
		if name == h.name {
			return true
		}
	}
	return false
}

// Compile compiles src, an expression that stands at pos in the YAML file
// (pos.Block is true for a `|` block scalar), for the configuration path
// path. Errors are *config.Error placed in the YAML file (STYLE.md 2):
// line-exact; the column is exact for a plain single-line scalar and
// relative to the expression's line inside a block scalar, whose
// indentation pos does not carry.
func (c *Compiler) Compile(src string, pos config.Pos, path string) (prog *Program, err error) {
	if len(c.reserved) > 0 {
		return nil, &config.Error{Pos: pos, Path: path, Msg: fmt.Sprintf("request name %s is reserved in expressions; rename the request", strings.Join(c.reserved, ", "))}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &config.Error{Pos: pos, Path: path, Msg: "the expression is empty"}
	}
	// The visitors are ours: a bug there must be a config error, not a
	// crash at load. FuzzCompileEval fails on this message.
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, &config.Error{Pos: pos, Path: path, Msg: fmt.Sprintf("cannot compile the expression: %v", r)}
		}
	}()
	p, reads, fe, err := c.build(src)
	if err != nil {
		// Only a panic inside expr's compiler gets here: expr reports
		// every problem with the expression as a *file.Error.
		return nil, &config.Error{Pos: pos, Path: path, Msg: "cannot compile the expression: " + firstLine(err.Error())}
	}
	if fe != nil {
		return nil, &config.Error{Pos: posOf(pos, fe.Line, fe.Column), Path: path, Msg: c.explain(strings.TrimSpace(fe.Message))}
	}
	docs := make([]string, 0, len(c.docs))
	for d := range c.docs {
		docs = append(docs, d)
	}
	records := make([]string, 0, len(c.records))
	for r := range c.records {
		records = append(records, r)
	}
	return &Program{prog: p, docs: docs, records: records, reads: reads, pos: pos, path: path}, nil
}

// build runs expr's compile pipeline with our rewrite in the middle.
// expr.Compile with expr.Patch would run extra type checks after the
// visitors, and expr's checker does not re-check a call that already has
// a type from an earlier pass (it takes it as set by a patcher): an
// unknown name inside upper(...) would then compile. Running the steps
// ourselves gives exactly one check for the string-`+` decision and one
// final check on a tree with no stale call types. A problem in the
// expression comes back as a *file.Error bound to src.
func (c *Compiler) build(src string) (*vm.Program, []docRead, *file.Error, error) {
	cfg := conf.CreateNew()
	for _, op := range c.opts {
		op(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		fe, other := asFileError(err)
		if fe != nil {
			explainParse(src, fe)
		}
		return nil, nil, fe, other
	}
	rw := &rewriter{c: c, reads: make(map[*ast.CallNode]docRead)}
	ast.Walk(&tree.Node, rw)
	// This check only gives types to the `+` rewrite; its errors come
	// back from the final check.
	_, _ = checker.Check(tree, cfg)
	ast.Walk(&tree.Node, &concatRewriter{strs: make(map[ast.Node]bool)})
	ast.Walk(&tree.Node, clearCallTypes{})
	_, err = checker.Check(tree, cfg)
	var fe *file.Error
	if rw.err != nil {
		fe = rw.err.Bind(file.NewSource(src))
	}
	if err != nil {
		ce, other := asFileError(err)
		if other != nil {
			return nil, nil, nil, other
		}
		explainCall(tree.Node, ce)
		// A rewrite problem is the cause when it comes first.
		if fe == nil || ce.From < fe.From {
			fe = ce
		}
	}
	if fe == nil {
		if ce := checkCalls(tree.Node, c.helperNames); ce != nil {
			fe = ce.Bind(file.NewSource(src))
		}
	}
	if fe != nil {
		return nil, nil, fe, nil
	}
	// Before the optimizer, which may fold calls away.
	reads := c.constantReads(tree.Node)
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		ce, other := asFileError(err)
		if ce != nil {
			ce = ce.Bind(tree.Source)
		}
		return nil, nil, ce, other
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return prog, reads, nil, nil
}

// constantReads lists the response reads of a rewritten tree whose path
// is a constant (issue.user.login, get(issue, "labels.0")), in the order
// they appear, for Program.Missing.
func (c *Compiler) constantReads(tree ast.Node) []docRead {
	f := &readFinder{docs: c.docs}
	ast.Walk(&tree, f)
	return f.reads
}

type readFinder struct {
	docs  map[string]bool
	reads []docRead
}

// Visit implements ast.Visitor; it sees children first, so an inner read
// (the argument of a helper) comes before the call around it.
func (f *readFinder) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	// get(__budget, doc, path), or the same read narrowed by
	// rewriter.pluck with one more argument.
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !(id.Value == "get" && len(call.Arguments) == 3 || id.Value == getKeyName && len(call.Arguments) == 4) {
		return
	}
	doc, ok := call.Arguments[1].(*ast.IdentifierNode)
	if !ok || !f.docs[doc.Value] {
		return
	}
	if path, ok := call.Arguments[2].(*ast.StringNode); ok {
		f.reads = append(f.reads, docRead{doc: doc.Value, path: path.Value})
	}
}

// asFileError splits expr's errors into positioned ones and the rest.
func asFileError(err error) (*file.Error, error) {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fe, nil
	}
	return nil, err
}

// explain adds a hint to expr's message for an unknown name.
func (c *Compiler) explain(msg string) string {
	name, ok := strings.CutPrefix(msg, "unknown name ")
	if !ok || strings.ContainsAny(name, " ()") {
		return msg
	}
	if _, isBuiltin := builtin.Index[name]; isBuiltin && !c.kept[name] {
		return unavailable(name)
	}
	if s := suggest(name, c.names); s != "" {
		return fmt.Sprintf("%s (did you mean %s?)", msg, s)
	}
	return msg
}

// groupHint helps with an unknown group name.
func (c *Compiler) groupHint(name string) string {
	if len(c.groups) == 0 {
		return " (the pattern's regex has no named groups)"
	}
	names := make([]string, 0, len(c.groups))
	for g := range c.groups {
		names = append(names, g)
	}
	sort.Strings(names)
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return fmt.Sprintf(" (the regex's groups are %s)", strings.Join(names, ", "))
}

// recordHint helps with an unknown key of a record.
func (c *Compiler) recordHint(record, key string) string {
	names := make([]string, 0, len(c.records[record]))
	for k := range c.records[record] {
		names = append(names, k)
	}
	if len(names) == 0 {
		return fmt.Sprintf(" (%s has no keys)", record)
	}
	sort.Strings(names)
	if s := suggest(key, names); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return fmt.Sprintf(" (the keys of %s are %s)", record, strings.Join(names, ", "))
}

// unavailable explains an expr builtin that the language leaves out.
func unavailable(name string) string {
	return fmt.Sprintf("function %s is not available in unfurld expressions", name)
}

// posOf places an expr error inside the YAML file (STYLE.md 2). line is
// 1-based and col 0-based, as in expr's file.Error.
func posOf(pos config.Pos, line, col int) config.Pos {
	out := config.Pos{File: pos.File}
	switch {
	case pos.Line == 0:
		// Unknown place: keep just the file.
	case pos.Block:
		// A `|` block's text starts on the line below the indicator.
		out.Line, out.Col = pos.Line+line, col+1
	case line <= 1:
		out.Line, out.Col = pos.Line, pos.Col+col
	default:
		out.Line, out.Col = pos.Line+line-1, col+1
	}
	return out
}

// firstLine drops expr's source snippet, which repeats the YAML text.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// suggest returns the candidate closest to name, if it is close enough to
// be a typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(name, c); d < bestD && d < len(name) {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Program is a compiled expression. It is safe for concurrent use.
type Program struct {
	prog *vm.Program
	docs []string
	// records are the record names of a NewRecordCompiler program; such
	// a program has no groups or uri.
	records []string
	// reads are the response reads with a constant path, for Missing.
	reads []docRead
	pos   config.Pos
	path  string
	// vms holds *vm.VM for reuse: expr's VM resets its stack, scopes and
	// memory count at the start of every Run, and keeps the buffers it
	// grew, where a fresh VM per evaluation allocated them again on
	// every unfurl (issue 2).
	vms sync.Pool
}

// Eval runs the program on env with a reset VM, the VM memory budget and
// the byte budget (TH-34). Missing fields read as nil. A runtime error, an
// exhausted budget or a panic inside the VM or a helper becomes an
// *EvalError; Eval never panics.
func (p *Program) Eval(env *Env) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, p.evalError(fmt.Errorf("%v", r))
		}
	}()
	if env == nil {
		env = &Env{}
	}
	vars := make(map[string]any, len(p.docs)+3)
	for _, d := range p.docs {
		vars[d] = env.Docs[d]
	}
	if len(p.records) > 0 {
		for _, r := range p.records {
			rec := env.Records[r]
			if rec == nil {
				rec = map[string]string{}
			}
			vars[r] = rec
		}
	} else {
		groups := env.Groups
		if groups == nil {
			groups = map[string]string{}
		}
		vars["groups"] = groups
		vars["uri"] = env.URI
	}
	vars[budgetName] = &budget{left: MaxEvalBytes}
	machine, _ := p.vms.Get().(*vm.VM)
	if machine == nil {
		machine = &vm.VM{MemoryBudget: MemoryBudget}
	}
	out, err = machine.Run(p.prog, vars)
	// Reached only when Run returned (it recovers panics of its own and
	// of helpers); a VM left by a panic that got past it is dropped. The
	// let-variables are cleared so that a pooled VM holds no upstream
	// data between evaluations; Run clears its stack and scopes itself.
	clear(machine.Variables)
	clear(machine.Stack[:cap(machine.Stack)])
	p.vms.Put(machine)
	if err != nil {
		return nil, p.evalError(err)
	}
	return out, nil
}

// Pos is where the program was written in the configuration.
func (p *Program) Pos() config.Pos { return p.pos }

// Missing explains why the program's value came out empty when a
// response read it makes finds nothing: the first read whose path is
// absent or null, with the nearest fields that exist (Doc.Missing). It
// returns "" when every read finds a value. It reads the responses again,
// so it is for reporting a missing value only, never per unfurl.
func (p *Program) Missing(env *Env) string {
	if env == nil {
		return ""
	}
	for _, rd := range p.reads {
		if rd.path == "" {
			continue
		}
		if why := env.Docs[rd.doc].Missing(rd.doc, rd.path); why != "" {
			return why
		}
	}
	return ""
}

// String returns where the program was written.
func (p *Program) String() string { return p.path }

// evalError wraps a runtime failure with the expression's place.
func (p *Program) evalError(err error) *EvalError {
	e := &EvalError{Pos: p.pos, Path: p.path, Msg: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Msg = fe.Message
		e.Pos = posOf(p.pos, fe.Line, fe.Column)
		// The VM signals its own budget with a panic string, not an
		// error value; give callers the same sentinel as ours.
		if fe.Message == ErrBudget.Error() && fe.Prev == nil {
			e.Err = fmt.Errorf("%w", ErrBudget)
		}
	}
	// Messages may quote upstream data; keep them one short line (TH-33).
	e.Msg = Truncate(strings.Join(strings.Fields(e.Msg), " "), 300)
	return e
}

// EvalError is a failed evaluation. Provider code turns it into a generic
// error operation and logs it; it never reaches Notion (TH-34, TH-36).
type EvalError struct {
	// Pos is where the failing part of the expression stands in the YAML
	// file, as exactly as Compile's errors.
	Pos config.Pos
	// Path is the configuration path of the expression.
	Path string
	// Msg says what went wrong, on one line.
	Msg string
	// Err is the cause; errors.Is(err, ErrBudget) reports an exhausted
	// budget.
	Err error
}

// Error formats the failure as "file:line:col: path: message".
func (e *EvalError) Error() string {
	return config.Error{Pos: e.Pos, Path: e.Path, Msg: e.Msg}.Error()
}

// Unwrap returns the cause.
func (e *EvalError) Unwrap() error { return e.Err }

// Path is a compiled gjson path read from one named response, for an
// attribute's `path:` and `from:`.
type Path struct {
	doc  string
	path string
}

// CompilePath checks that from names a response of the pattern and that
// path is not empty. cfgPath and pos place errors, as for Compile. gjson
// has no syntax errors: a path that matches nothing reads nil.
func (c *Compiler) CompilePath(from, path string, pos config.Pos, cfgPath string) (*Path, error) {
	if !c.docs[from] {
		known := make([]string, 0, len(c.docs))
		for d := range c.docs {
			known = append(known, d)
		}
		sort.Strings(known)
		msg := fmt.Sprintf("no request named %q in this pattern", from)
		if s := suggest(from, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return nil, &config.Error{Pos: pos, Path: cfgPath, Msg: msg}
	}
	if strings.TrimSpace(path) == "" {
		return nil, &config.Error{Pos: pos, Path: cfgPath, Msg: "the path is empty"}
	}
	return &Path{doc: from, path: path}, nil
}

// Eval reads the path from its response; a missing value is nil. It never
// fails: the error is there to satisfy Evaluator.
func (p *Path) Eval(env *Env) (any, error) {
	if env == nil {
		return nil, nil
	}
	return env.Docs[p.doc].Get(p.path), nil
}
