package compiled

import (
	"reflect"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
)

// RestartRequired lists the keys outside providers whose value differs
// between the running configuration and next, as dotted paths
// ("server.listen", "storage.path"), in file order, and the providers'
// canary schedules that differ ("providers.github.canary.interval"). A
// reload applies providers only: the listener, the store, the keyring,
// the Notion client, the logger and the canary schedule are built once
// at start, so a change to these keys takes effect at the next restart,
// and the reload says so rather than ignoring it. Secrets are compared
// but never printed.
func RestartRequired(running, next *config.Config) []string {
	var out []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem()
	for _, f := range sections(a.Type()) {
		diffKeys(a.Field(f.Index[0]), b.Field(f.Index[0]), yamlName(f), &out)
	}
	was := map[string]time.Duration{}
	for _, p := range running.Providers {
		was[p.Name] = p.Canary.Interval.D()
	}
	for _, p := range next.Providers {
		if d, ok := was[p.Name]; (ok && d != p.Canary.Interval.D()) || (!ok && p.Canary.Interval > 0) {
			out = append(out, "providers."+p.Name+".canary.interval")
		}
	}
	return out
}

// sections are the top-level keys of Config a reload cannot change:
// every one but providers.
func sections(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" && name != "-" && name != "providers" {
			out = append(out, f)
		}
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

// Running is next with the sections a reload cannot change (all but
// providers) taken from running, so what a reload compiles runs with the
// settings the process started with: the providers of the new file over
// the listener, store and Notion client already open.
func Running(running, next *config.Config) *config.Config {
	merged := *next
	a, m := reflect.ValueOf(running).Elem(), reflect.ValueOf(&merged).Elem()
	for _, f := range sections(a.Type()) {
		m.Field(f.Index[0]).Set(a.Field(f.Index[0]))
	}
	return &merged
}
