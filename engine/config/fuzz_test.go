package config

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, must
// return a Config or an error, and must return its problems sorted.
// Run it with `go test -run '^$' -fuzz FuzzParse ./engine/config`.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("providers: [{include: builtin:mini}, {<<: {name: x}}]\n"))
	builtins := fstest.MapFS{"mini.yaml": {Data: []byte("name: mini\nupstream: {base_url: https://x.example}\n")}}
	env := testEnv()
	opts := LoadOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Builtins:  builtins,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The name puts relative includes inside testdata, never the
		// working directory's parents.
		cfg, errs := Parse(filepath.Join("testdata", "fuzz.yaml"), data, opts)
		if cfg == nil && !errs.HasErrors() {
			t.Fatalf("no config and no error for %q", data)
		}
		for i := 1; i < len(errs); i++ {
			a, b := errs[i-1].Pos, errs[i].Pos
			if a.File > b.File || (a.File == b.File && (a.Line > b.Line || (a.Line == b.Line && a.Col > b.Col))) {
				t.Fatalf("problems not sorted: %v before %v", a, b)
			}
		}
		_ = errs.Error()
	})
}
