package mapping

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm/runtime"
)

// ErrBudget is the cause of an evaluation that tried to use more memory
// than its budget (TH-34). Check it with errors.Is.
var ErrBudget = errors.New("memory budget exceeded")

// budgetName is the hidden environment entry that carries an evaluation's
// byte budget. The rewrite passes it as the first argument of every helper
// that allocates in proportion to its input; users cannot name it because
// names starting with "__" are rejected at compile time.
const budgetName = "__budget"

// budget counts the bytes one evaluation may still allocate in helpers.
// expr's own VM budget only counts list and map elements it creates, so
// string concatenation, replace, join and JSON decoding are charged here;
// each helper charges before it allocates, so a runaway expression stops
// with an error instead of exhausting memory.
type budget struct{ left int }

// spend takes n bytes from the budget.
func (b *budget) spend(n int) error {
	if b == nil || n < 0 || n > b.left {
		if b != nil {
			b.left = 0
		}
		return fmt.Errorf("%w (more than %d bytes of strings and decoded JSON)", ErrBudget, MaxEvalBytes)
	}
	b.left -= n
	return nil
}

// sliceCost is what a list element is charged: its interface header.
const sliceCost = 16

// keptBuiltins are the expr builtins left enabled: pure, and either cheap
// or counted by the VM's memory budget. Builtins that allocate in
// proportion to their input are replaced by metered helpers of the same
// name (upper, lower, replace, split, join, string, keys, values, get), and
// those that read the clock or are unbounded (now, date, duration, repeat,
// toJSON, fromJSON...) are not available.
var keptBuiltins = []string{
	"len", "trim", "trimPrefix", "trimSuffix", "indexOf", "hasPrefix", "hasSuffix",
	"map", "filter", "all", "any", "none", "one", "count", "find", "sum",
	"first", "last", "sort", "min", "max",
	"int", "float", "abs", "round", "floor", "ceil",
}

// helper is one function of the language.
type helper struct {
	name string
	// metered helpers take the evaluation's *budget as a hidden first
	// argument, inserted by the rewrite.
	metered bool
	fn      func(args ...any) (any, error)
	// types are the signatures the type checker accepts (expr.Function).
	types []any
}

// helpers returns the function set. It is built per Compiler rather than
// held in a package variable (STYLE.md: no globals).
func helpers() []helper {
	m := func(name string, fn func(b *budget, args []any) (any, error), types ...any) helper {
		return helper{name: name, metered: true, fn: withBudget(name, fn), types: types}
	}
	p := func(name string, fn func(args ...any) (any, error), types ...any) helper {
		return helper{name: name, fn: fn, types: types}
	}
	return []helper{
		m("get", fnGet, new(func(*budget, Doc, string) any), new(func(*budget, any, any) any)),
		m(getKeyName, fnGetKey, new(func(*budget, Doc, string, string) any)),
		m(concatName, fnConcat, new(func(*budget, string, string) string)),
		m(addName, fnConcat, new(func(*budget, any, any) any)),
		m("upper", fnCase(strings.ToUpper), new(func(*budget, string) string)),
		m("lower", fnCase(strings.ToLower), new(func(*budget, string) string)),
		m("replace", fnReplace, new(func(*budget, string, string, string) string)),
		m("split", fnSplit, new(func(*budget, string, string) []string)),
		m("join", fnJoin, new(func(*budget, any) string), new(func(*budget, any, string) string)),
		m("string", fnString, new(func(*budget, any) string)),
		m("base64", fnBase64, new(func(*budget, string) string)),
		m("keys", fnKeys, new(func(*budget, any) []any)),
		m("values", fnValues, new(func(*budget, any) []any)),
		m("truncate", fnTruncate, new(func(*budget, any, int) any)),
		m("pluralize", fnPluralize, new(func(*budget, any, string) string), new(func(*budget, any, string, string) string)),
		p("date", fnTime(FormatDate), new(func(any) any)),
		p("datetime", fnTime(FormatDatetime), new(func(any) any)),
		p("color", fnColor, new(func(any) any)),
		p("default", fnDefault, new(func(any, any) any)),
	}
}

// options turns the helpers into expr options.
func (h helper) option() expr.Option {
	return expr.Function(h.name, h.fn, h.types...)
}

// withBudget unpacks the hidden budget argument.
func withBudget(name string, fn func(b *budget, args []any) (any, error)) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s: missing arguments", name)
		}
		b, ok := args[0].(*budget)
		if !ok {
			return nil, fmt.Errorf("%s: internal error: no budget", name)
		}
		return fn(b, args[1:])
	}
}

// want checks the argument count; the type checker already did, so this
// only guards against a future signature change turning into a panic.
func want(name string, args []any, n ...int) error {
	for _, c := range n {
		if len(args) == c {
			return nil
		}
	}
	return fmt.Errorf("%s: wrong number of arguments (%d)", name, len(args))
}

// str reads a string argument; nil reads as "" because missing upstream
// fields are nil and string helpers should pass them through quietly.
func str(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("%s: want a string, got a %s", name, typeName(v))
	}
}

// fnGet reads a gjson path from a response, or a key or index from a map
// or list. Missing values give nil.
func fnGet(b *budget, args []any) (any, error) {
	if err := want("get", args, 2); err != nil {
		return nil, err
	}
	switch from := args[0].(type) {
	case Doc:
		path, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("get: a response path must be a string, got a %s", typeName(args[1]))
		}
		r := from.result(path)
		// Decoding costs about the size of the raw JSON it reads.
		if err := b.spend(len(r.Raw)); err != nil {
			return nil, err
		}
		return toValue(r), nil
	case nil:
		return nil, nil
	case map[string]any:
		key, _ := args[1].(string)
		return from[key], nil
	case map[string]string:
		key, _ := args[1].(string)
		if v, ok := from[key]; ok {
			return v, nil
		}
		return nil, nil
	case []any:
		return index(from, args[1]), nil
	case []string:
		return index(from, args[1]), nil
	default:
		return nil, fmt.Errorf("get: cannot read from a %s", typeName(from))
	}
}

// getKeyName is the read map(<response read>, .key) is rewritten to
// (rewriter.pluck); like every name starting with __, users cannot
// write it.
const getKeyName = "__getkey"

// fnGetKey is get for a response read whose list elements are only read
// at one key: objects in the list decode with that key alone. It is
// charged like get, the size of the raw JSON it reads.
func fnGetKey(b *budget, args []any) (any, error) {
	if err := want(getKeyName, args, 3); err != nil {
		return nil, err
	}
	from, okDoc := args[0].(Doc)
	path, okPath := args[1].(string)
	key, okKey := args[2].(string)
	if !okDoc || !okPath || !okKey {
		return nil, fmt.Errorf("get: internal error: arguments %s, %s, %s", typeName(args[0]), typeName(args[1]), typeName(args[2]))
	}
	r := from.result(path)
	if err := b.spend(len(r.Raw)); err != nil {
		return nil, err
	}
	return toValueKeeping(r, key), nil
}

// index reads list[i], counting negative i from the end; out of range or
// a non-integer index gives nil.
func index[T any](list []T, i any) any {
	f, ok := toFloat(i)
	if !ok || f != math.Trunc(f) {
		return nil
	}
	n := int(f)
	if n < 0 {
		n += len(list)
	}
	if n < 0 || n >= len(list) {
		return nil
	}
	return list[n]
}

// fnConcat is `a + b` with the string case metered. When one side is a
// string, nil on the other side counts as "", so a missing field does not
// fail a whole title. Other operands get expr's own addition.
func fnConcat(b *budget, args []any) (out any, err error) {
	if err := want("+", args, 2); err != nil {
		return nil, err
	}
	x, y := args[0], args[1]
	xs, xok := x.(string)
	ys, yok := y.(string)
	if (xok || yok) && (xok || x == nil) && (yok || y == nil) {
		if err := b.spend(len(xs) + len(ys)); err != nil {
			return nil, err
		}
		return xs + ys, nil
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return runtime.Add(x, y), nil
}

// fnBase64 is standard Base64 with padding (RFC 4648 section 4), the
// encoding of HTTP Basic credentials (RFC 7617): upstream.auth.value
// builds "Basic " + base64(credential.email + ":" + credential.token).
func fnBase64(b *budget, args []any) (any, error) {
	if err := want("base64", args, 1); err != nil {
		return nil, err
	}
	s, err := str("base64", args[0])
	if err != nil {
		return nil, err
	}
	n := base64.StdEncoding.EncodedLen(len(s))
	if err := b.spend(n); err != nil {
		return nil, err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

// fnCase is upper or lower.
func fnCase(f func(string) string) func(b *budget, args []any) (any, error) {
	return func(b *budget, args []any) (any, error) {
		if err := want("upper/lower", args, 1); err != nil {
			return nil, err
		}
		s, err := str("upper/lower", args[0])
		if err != nil {
			return nil, err
		}
		// Case mapping can grow a few runes by a byte; twice the input
		// is a safe upper bound to charge.
		if err := b.spend(2 * len(s)); err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

// fnReplace is strings.ReplaceAll, charged with the exact output size
// before it is built: nested replaces grow exponentially otherwise.
func fnReplace(b *budget, args []any) (any, error) {
	if err := want("replace", args, 3); err != nil {
		return nil, err
	}
	var s [3]string
	for i := range s {
		var err error
		if s[i], err = str("replace", args[i]); err != nil {
			return nil, err
		}
	}
	n := 0
	if s[1] == "" {
		n = utf8.RuneCountInString(s[0]) + 1
	} else {
		n = strings.Count(s[0], s[1])
	}
	size := int64(len(s[0])) + int64(n)*(int64(len(s[2]))-int64(len(s[1])))
	if size > int64(MaxEvalBytes) {
		size = int64(MaxEvalBytes) + 1 // fails below without overflowing int
	}
	if err := b.spend(int(size)); err != nil {
		return nil, err
	}
	return strings.ReplaceAll(s[0], s[1], s[2]), nil
}

// fnSplit is strings.Split; the pieces share the input's bytes, so only
// the list is charged.
func fnSplit(b *budget, args []any) (any, error) {
	if err := want("split", args, 2); err != nil {
		return nil, err
	}
	s, err := str("split", args[0])
	if err != nil {
		return nil, err
	}
	sep, err := str("split", args[1])
	if err != nil {
		return nil, err
	}
	if s == "" {
		return []string{}, nil
	}
	n := utf8.RuneCountInString(s)
	if sep != "" {
		n = strings.Count(s, sep) + 1
	}
	if err := b.spend(n * sliceCost); err != nil {
		return nil, err
	}
	return strings.Split(s, sep), nil
}

// fnJoin joins a list's items with a separator (default ""). Items are
// strings, numbers or bools; nil and "" items are skipped so that optional
// parts leave no doubled separators.
func fnJoin(b *budget, args []any) (any, error) {
	if err := want("join", args, 1, 2); err != nil {
		return nil, err
	}
	sep := ""
	if len(args) == 2 {
		var err error
		if sep, err = str("join", args[1]); err != nil {
			return nil, err
		}
	}
	var parts []string
	switch list := args[0].(type) {
	case nil:
		return "", nil
	case []string:
		parts = list
	case []any:
		parts = make([]string, 0, len(list))
		for i, item := range list {
			s, err := scalarText(item)
			if err != nil {
				return nil, fmt.Errorf("join: item %d: %w", i, err)
			}
			parts = append(parts, s)
		}
	default:
		return nil, fmt.Errorf("join: want a list, got a %s", typeName(args[0]))
	}
	size, kept := 0, 0
	for _, s := range parts {
		if s != "" {
			size += len(s)
			kept++
		}
	}
	if kept > 1 {
		size += (kept - 1) * len(sep)
	}
	if err := b.spend(size); err != nil {
		return nil, err
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, s := range parts {
		if s == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(sep)
		}
		sb.WriteString(s)
	}
	return sb.String(), nil
}

// scalarText writes a scalar as text; nil is "".
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	if f, ok := toFloat(v); ok {
		return formatNumber(f), nil
	}
	return "", fmt.Errorf("cannot write a %s as text", typeName(v))
}

// fnString converts a value to text: scalars as written, nil as "", lists
// and maps as JSON.
func fnString(b *budget, args []any) (any, error) {
	if err := want("string", args, 1); err != nil {
		return nil, err
	}
	if s, err := scalarText(args[0]); err == nil {
		if err := b.spend(len(s)); err != nil {
			return nil, err
		}
		return s, nil
	}
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(args[0]); err != nil {
		return nil, fmt.Errorf("string: cannot write a %s as text", typeName(args[0]))
	}
	s := strings.TrimSuffix(sb.String(), "\n")
	if err := b.spend(len(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// sortedKeys lists a map's keys in order, so keys() and values() give the
// same result on every run (Go map order is random).
func sortedKeys(name string, v any) ([]string, func(string) any, error) {
	switch m := v.(type) {
	case nil:
		return nil, nil, nil
	case map[string]any:
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks, func(k string) any { return m[k] }, nil
	case map[string]string:
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks, func(k string) any { return m[k] }, nil
	default:
		return nil, nil, fmt.Errorf("%s: want a map, got a %s", name, typeName(v))
	}
}

// fnKeys lists a map's keys, sorted.
func fnKeys(b *budget, args []any) (any, error) {
	if err := want("keys", args, 1); err != nil {
		return nil, err
	}
	ks, _, err := sortedKeys("keys", args[0])
	if err != nil {
		return nil, err
	}
	if err := b.spend(len(ks) * sliceCost); err != nil {
		return nil, err
	}
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out, nil
}

// fnValues lists a map's values in the order of its sorted keys.
func fnValues(b *budget, args []any) (any, error) {
	if err := want("values", args, 1); err != nil {
		return nil, err
	}
	ks, get, err := sortedKeys("values", args[0])
	if err != nil {
		return nil, err
	}
	if err := b.spend(len(ks) * sliceCost); err != nil {
		return nil, err
	}
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = get(k)
	}
	return out, nil
}

// fnTruncate is Truncate; nil passes through as nil.
func fnTruncate(b *budget, args []any) (any, error) {
	if err := want("truncate", args, 2); err != nil {
		return nil, err
	}
	if args[0] == nil {
		return nil, nil
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("truncate: want a string, got a %s", typeName(args[0]))
	}
	f, ok := toFloat(args[1])
	if !ok || f != math.Trunc(f) {
		return nil, fmt.Errorf("truncate: the length must be an integer, got a %s", typeName(args[1]))
	}
	n := int(math.Max(math.Min(f, math.MaxInt32), -1))
	out := Truncate(s, n)
	if len(out) != len(s) {
		if err := b.spend(len(out)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fnPluralize writes "1 comment" or "3 comments".
func fnPluralize(b *budget, args []any) (any, error) {
	if err := want("pluralize", args, 2, 3); err != nil {
		return nil, err
	}
	n, ok := toFloat(args[0])
	if !ok || math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("pluralize: want a number, got a %s", typeName(args[0]))
	}
	word, err := str("pluralize", args[1])
	if err != nil {
		return nil, err
	}
	if n != 1 && n != -1 {
		if len(args) == 3 {
			if word, err = str("pluralize", args[2]); err != nil {
				return nil, err
			}
		} else {
			word += "s"
		}
	}
	out := formatNumber(n) + " " + word
	if err := b.spend(len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// fnTime is date() or datetime(): nil and "" pass through as nil, so a
// missing timestamp leaves the attribute out instead of failing.
func fnTime(format func(any) (string, error)) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		if err := want("date/datetime", args, 1); err != nil {
			return nil, err
		}
		if args[0] == nil || args[0] == "" {
			return nil, nil
		}
		return format(args[0])
	}
}

// fnColor is color(): a hex string to {"r","g","b"}; nil and "" pass
// through as nil.
func fnColor(args ...any) (any, error) {
	if err := want("color", args, 1); err != nil {
		return nil, err
	}
	if args[0] == nil || args[0] == "" {
		return nil, nil
	}
	r, g, b, err := ParseColor(args[0])
	if err != nil {
		return nil, err
	}
	return map[string]any{"r": int(r), "g": int(g), "b": int(b)}, nil
}

// fnDefault is default(v, fallback).
func fnDefault(args ...any) (any, error) {
	if err := want("default", args, 2); err != nil {
		return nil, err
	}
	if isEmpty(args[0]) {
		return args[1], nil
	}
	return args[0], nil
}

// isEmpty reports nil, "", and empty lists and maps. 0 and false are
// values, not absences.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
