package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
)

// Set at link time by the Docker build and CI (-ldflags "-X
// main.stampedVersion=... -X main.stampedRevision=..."), where the
// source has no .git for the Go toolchain to read. Package variables
// because -X can set nothing else; nothing assigns them at run time.
var (
	stampedVersion  string
	stampedRevision string
)

// buildInfo is what `unfurld version` prints.
type buildInfo struct {
	Version  string
	Revision string
	Time     string
	Modified bool
	Go       string
}

// readBuildInfo combines the toolchain's build information with the
// link-time stamps; a stamp wins, since the toolchain knows no revision
// when the build had no .git.
func readBuildInfo(bi *debug.BuildInfo, ok bool, version, revision string) buildInfo {
	out := buildInfo{Version: "devel", Revision: "unknown"}
	if ok {
		out.Go = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			out.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				out.Revision = s.Value
			case "vcs.time":
				out.Time = s.Value
			case "vcs.modified":
				out.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		out.Version = version
	}
	if revision != "" {
		out.Revision = revision
	}
	return out
}

// String is the one line `unfurld version` prints.
func (b buildInfo) String() string {
	var extra []string
	if b.Time != "" {
		extra = append(extra, b.Time)
	}
	if b.Modified {
		extra = append(extra, "modified")
	}
	if b.Go != "" {
		extra = append(extra, b.Go)
	}
	s := fmt.Sprintf("unfurld %s revision %s", b.Version, b.Revision)
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// version returns this binary's version for the logs and the banner.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	return readBuildInfo(bi, ok, stampedVersion, stampedRevision).Version
}

func versionCmd(_ context.Context, args []string, e env) int {
	fs := newFlagSet("version", e)
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	bi, ok := debug.ReadBuildInfo()
	fmt.Fprintln(e.stdout, readBuildInfo(bi, ok, stampedVersion, stampedRevision))
	return exitOK
}
