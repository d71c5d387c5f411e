package providers

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

// files holds the built-in provider definitions. It is a package-level
// variable only because //go:embed can fill nothing else; it is never
// written, and callers reach it through FS and Names.
//
//go:embed *.yaml
var files embed.FS

// FS returns the built-in providers as "<name>.yaml" files at the root, the
// layout config.LoadOptions.Builtins expects.
func FS() fs.FS { return files }

// Names returns the names of the built-in providers, sorted: the file names
// without ".yaml", which are also the providers' name keys.
func Names() []string {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		// An embed.FS root always reads; nothing to report.
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
