// Package version reports which meshlab build is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is stamped at link time (-X github.com/meshlab/meshlab/version.Version=...); a plain
// `go build` falls back to the VCS revision recorded by the Go toolchain.
var Version = ""

// String returns the version, e.g. "v0.1.0" or "devel+1a2b3c4d".
func String() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 8 {
				return "devel+" + s.Value[:8]
			}
		}
	}
	return "devel"
}

// Long is the line `meshlab version` prints.
func Long() string {
	return fmt.Sprintf("meshlab %s %s %s/%s", String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Revision returns the VCS revision the Go toolchain recorded in the binary, or "" when it recorded none.
func Revision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
