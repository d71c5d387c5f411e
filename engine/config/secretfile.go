package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file gives every secret key two more ways to be set besides a
// literal: ${NAME} (env.go) and a _file form. For any key k of type
// Secret, `k_file: PATH` reads the secret from the file at PATH, the way
// Docker and Kubernetes mount secrets (/run/secrets/NAME). The loader
// records which way each secret came (Config.Sources), so that
// production mode can refuse literals and messages can name the source.

// secretType is the reflect.Type of Secret.
func secretType() reflect.Type { return reflect.TypeFor[Secret]() }

// secretFileSuffix turns a secret key into its file form.
const secretFileSuffix = "_file"

// maxSecretFileBytes caps a secret file: a secret is a line, and a
// mistyped path to a large file must fail rather than fill memory.
const maxSecretFileBytes = 64 << 10

// noteSecret records where the secret just decoded at path came from.
func (l *loader) noteSecret(n *yaml.Node, v reflect.Value, path, file string) {
	if v.String() == "" {
		return // nothing to protect; required-ness is validation's job
	}
	src := SecretSource{Kind: SourceLiteral, Pos: nodePos(n, file)}
	if name, ok := l.fromEnv[n]; ok {
		src.Kind, src.Env = SourceEnv, name
	}
	l.sources[path] = src
}

// secretFileField reports the index of the Secret field that key, spelled
// "<k>_file", reads from a file, or -1 when key is not such a form.
func (l *loader) secretFileField(v reflect.Value, fields []field, key string) int {
	base, ok := strings.CutSuffix(key, secretFileSuffix)
	if !ok {
		return -1
	}
	idx := fieldIndex(fields, base)
	if idx < 0 || v.Type().Field(idx).Type != secretType() {
		return -1
	}
	return idx
}

// decodeSecretFile reads the secret of key p (a "<k>_file" entry of the
// mapping whose entries are all) into v. The file's contents, less one
// trailing newline, are the secret; they never appear in a message.
func (l *loader) decodeSecretFile(p pair, all []pair, v reflect.Value, path, file string) {
	base := strings.TrimSuffix(p.key.Value, secretFileSuffix)
	basePath, filePath := joinPath(path, base), joinPath(path, p.key.Value)
	for _, o := range all {
		if o.key.Value == base {
			l.errs.Add(nodePos(p.key, file), filePath, "set only one of %s and %s", base, p.key.Value)
			l.bad[basePath] = true
			return
		}
	}
	var name string
	l.decode(p.val, reflect.ValueOf(&name).Elem(), filePath, file, p.key)
	if l.bad[filePath] {
		l.bad[basePath] = true // a missing variable, already reported
		return
	}
	at := l.pos[filePath]
	// The secret's own path points at the _file line, so later problems
	// with the value (too short, same as another) are placed there.
	l.pos[basePath] = at
	name = strings.TrimSpace(name)
	if name == "" {
		l.errs.Add(at, filePath, "want the path of a file holding the secret, e.g. /run/secrets/%s", base)
		l.bad[basePath] = true
		return
	}
	if !filepath.IsAbs(name) {
		dir := filepath.Dir(file)
		if strings.HasPrefix(file, builtinPrefix) {
			dir = l.dir
		}
		name = filepath.Join(dir, name)
	}
	secret, err := readSecretFile(name)
	if err != nil {
		l.errs.Add(at, filePath, "%v", err)
		l.bad[basePath] = true
		return
	}
	v.SetString(secret)
	l.sources[basePath] = SecretSource{Kind: SourceFile, File: name, Pos: at}
}

// readSecretFile reads a secret from a regular file of at most
// maxSecretFileBytes and drops one trailing newline (echo and most
// editors add one; a secret never ends with one). Errors name the file,
// never its contents.
func readSecretFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below, once
		}
		return "", fmt.Errorf("cannot read secret file %s: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s: %w", name, err)
	}
	if len(data) > maxSecretFileBytes {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", name, maxSecretFileBytes)
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", name)
	}
	return s, nil
}
