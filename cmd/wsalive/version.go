package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// linkVersion is set at link time: -ldflags "-X main.linkVersion=v1.2.3".
// It wins over the module version, which `go build` in a checkout leaves
// as "(devel)".
var linkVersion string

// linkRevision is set at link time where the build context has no .git
// (a container build): -ldflags "-X main.linkRevision=$(git rev-parse HEAD)".
var linkRevision string

// buildVersion returns the version and the VCS revision this binary was
// built from, read from its build information: the module version that
// `go install module@version` records, and the commit (with "+dirty"
// when the tree had changes) that `go build` records inside a git
// checkout, unless -buildvcs=false turned that off.
func buildVersion() (version, revision string) {
	version, revision = "devel", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && revision != "unknown" {
			revision += "+dirty"
		}
	}
	if linkVersion != "" {
		version = linkVersion
	}
	if linkRevision != "" && revision == "unknown" {
		revision = linkRevision
	}
	return version, revision
}

// versionLine is what `wsalive version` prints.
func versionLine() string {
	v, rev := buildVersion()
	return fmt.Sprintf("wsalive %s (revision %s, %s, %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
