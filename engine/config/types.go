package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Secret is a string that never prints: String, MarshalYAML, MarshalJSON
// and LogValue all give "<redacted>" (security.md TH-49). Reveal returns
// the value for the one place that needs it.
type Secret string

const redacted = "<redacted>"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// Format keeps every fmt verb (%s, %v, %q, %x...) from printing the value.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler without revealing the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue implements slog.LogValuer without revealing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Where a secret's value came from (SecretSource.Kind).
const (
	// SourceLiteral: written in the YAML file itself. Refused in
	// production mode, where a config file is often committed, copied
	// into images and shown in reviews.
	SourceLiteral = "literal"
	// SourceEnv: a ${NAME} reference supplied the value.
	SourceEnv = "environment"
	// SourceFile: read from the file named by the key's _file form
	// (client_secret_file: /run/secrets/x), for Docker and Kubernetes
	// secrets.
	SourceFile = "file"
	// SourceGenerated: made up by FillDevSecrets in development mode.
	SourceGenerated = "generated"
)

// SecretSource says where a secret's value came from, so that a message
// can point at it without printing it.
type SecretSource struct {
	// Kind is SourceLiteral, SourceEnv, SourceFile or SourceGenerated.
	Kind string
	// Env is the variable that supplied the value (SourceEnv).
	Env string
	// File is the file the value was read from (SourceFile) or kept in
	// (SourceGenerated).
	File string
	// Pos is where the value, or its _file key, stands in the YAML.
	Pos Pos
}

// Describe says in a few words where the value came from, e.g. "from the
// environment variable GITHUB_TOKEN".
func (s SecretSource) Describe() string {
	switch s.Kind {
	case SourceEnv:
		return "from the environment variable " + s.Env
	case SourceFile:
		return "read from the file " + s.File
	case SourceGenerated:
		return "generated in development mode into " + s.File
	default:
		return "written in the configuration at " + s.Pos.String()
	}
}

// Duration is a time.Duration written as "5s", "1m30s" or "250ms".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like 5s, got a %s", kindName(n.Kind))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("want a duration like 5s or 250ms, got %q", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size in bytes written as a number or with a unit: "64KiB",
// "2MiB", "1GiB" (binary) or "64KB", "2MB" (decimal).
type ByteSize int64

// UnmarshalYAML parses a size with an optional unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size like 64KiB, got a %s", kindName(n.Kind))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses "123", "64KiB", "2MiB", "1GiB", "64KB", "2MB".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("want a size like 65536, 64KiB or 2MiB, got %q", s)
	}
	return v * mult, nil
}

// CIDR is an IP range written "10.0.0.0/8" or "2001:db8::/32"; a bare
// address ("192.0.2.7") is a range of one. Host bits are cleared, so
// "10.1.2.3/8" means 10.0.0.0/8.
type CIDR netip.Prefix

// Prefix returns the range.
func (c CIDR) Prefix() netip.Prefix { return netip.Prefix(c) }

// UnmarshalYAML parses a range or a single address.
func (c *CIDR) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want an IP range like 10.0.0.0/8, got a %s", kindName(n.Kind))
	}
	v := strings.TrimSpace(n.Value)
	p, err := netip.ParsePrefix(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil || a.Zone() != "" {
			return fmt.Errorf("want an IP range like 10.0.0.0/8 or fd00::/8, or one address, got %q", n.Value)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	*c = CIDR(p.Masked())
	return nil
}

// MarshalYAML prints the range in CIDR notation.
func (c CIDR) MarshalYAML() (any, error) { return c.Prefix().String(), nil }

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}

// Pos is a place in a YAML file. Line and Col are 1-based; a zero Pos
// means the place is unknown.
type Pos struct {
	File string
	Line int
	Col  int
	// Block is true when the scalar there is a literal block (`|`): its
	// text starts on the line below Line.
	Block bool
}

// String formats the position as file:line:col.
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Positions maps dotted config paths to where their values stand. Lists
// whose items have a name (or id) use that name as the path segment
// ("providers.github.patterns.issue"); other list items use [i]
// ("samples[0]"), and so does an item whose name an earlier item of the
// same list already has ("patterns[1]"), so every item has a path of its
// own. A scalar is placed at its value, a mapping or list at its key.
type Positions map[string]Pos

// Of returns the position of path, or of its nearest ancestor that has
// one, so an error about a missing key points at its parent.
func (p Positions) Of(path string) Pos {
	for path != "" {
		if pos, ok := p[path]; ok {
			return pos
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p[""]
}

// Error is one configuration problem at one place.
type Error struct {
	Pos  Pos
	Path string
	Msg  string
	// Warning problems are printed but do not stop the server.
	Warning bool
}

// Error formats the problem as "file:line:col: path: message".
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors collects every problem found in a configuration.
type Errors []Error

// Add records a problem at path, placed with pos.
func (es *Errors) Add(pos Pos, path, format string, args ...any) {
	*es = append(*es, Error{Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Warn records a warning at path.
func (es *Errors) Warn(pos Pos, path, format string, args ...any) {
	*es = append(*es, Error{Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// HasErrors reports whether any problem is not a warning.
func (es Errors) HasErrors() bool {
	for _, e := range es {
		if !e.Warning {
			return true
		}
	}
	return false
}

// Sort orders problems by file, line, column, then path.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return es[i].Path < es[j].Path
	})
}

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error when it holds at least one error (warnings
// alone give nil).
func (es Errors) Err() error {
	if es.HasErrors() {
		return es
	}
	return nil
}
