package compiled

import (
	"reflect"
	"strings"

	"github.com/unfurld/unfurld/engine/config"
)

// RestartRequired lists the keys outside providers whose value differs
// between the running configuration and next, as dotted paths
// ("server.listen", "storage.path"), in file order. A reload applies
// providers only: the listener, the store, the keyring, the Notion
// client and the logger are built once at start, so a change to these
// keys takes effect at the next restart, and the reload says so rather
// than ignoring it. Secrets are compared but never printed.
func RestartRequired(running, next *config.Config) []string {
	var out []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem()
	for _, name := range []string{"Server", "Storage", "Notion"} {
		f, _ := a.Type().FieldByName(name)
		diffKeys(a.FieldByName(name), b.FieldByName(name), yamlName(f), &out)
	}
	return out
}

// diffKeys appends to out the dotted path of every leaf that differs
// between a and b, two values of one struct type. Lists and maps count
// as one leaf.
func diffKeys(a, b reflect.Value, path string, out *[]string) {
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
		return
	}
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name := yamlName(f)
		if name == "" || name == "-" {
			continue
		}
		diffKeys(a.Field(i), b.Field(i), path+"."+name, out)
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// Running is next with the sections a reload cannot change (server,
// storage, notion) taken from running, so what a reload compiles runs
// with the settings the process started with: the providers of the new
// file over the listener, store and Notion client already open.
func Running(running, next *config.Config) *config.Config {
	merged := *next
	merged.Server, merged.Storage, merged.Notion = running.Server, running.Storage, running.Notion
	return &merged
}
