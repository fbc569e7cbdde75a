package nodeimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real `go build` of a small module: progress starts with resolving modules, then counts packages as
// `go build -v` compiles them, against every package the build depends on.
func TestGoModuleBuildReportsProgress(t *testing.T) {
	dir := t.TempDir()
	// A source no build cache has seen, so that at least the main package is compiled.
	main := fmt.Sprintf("package main\n\nimport \"fmt\"\n\nconst stamp = %d\n\nfunc main() { fmt.Println(stamp) }\n", time.Now().UnixNano())
	var seen []string
	bin, err := goModule{dir: dir, gomod: "module meshlab.local/progress\n\ngo 1.23\n", mainSrc: main, packages: []string{"."}, outputs: []string{"progress"}, ldflags: "-s -w"}.
		build(context.Background(), t.Logf, func(d string) { seen = append(seen, d) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "progress")); err != nil {
		t.Fatalf("no binary: %v", err)
	}
	if len(seen) < 2 || seen[0] != "resolving modules" {
		t.Fatalf("progress = %q, want resolving modules first, then counts", seen)
	}
	m := regexp.MustCompile(`^(\d+) of (\d+) packages compiled$`).FindStringSubmatch(seen[len(seen)-1])
	if m == nil {
		t.Fatalf("last progress %q is not a count", seen[len(seen)-1])
	}
	done, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	// fmt pulls in dozens of standard packages; the main package is new, so it was compiled.
	if total < 10 || done < 1 || done > total {
		t.Errorf("%d of %d packages compiled: want at least the main package, of at least fmt's dependencies", done, total)
	}
}

// A compile error is reported with the compiler's own lines, not swallowed by the counting.
func TestGoModuleBuildReportsCompileErrors(t *testing.T) {
	_, err := goModule{dir: t.TempDir(), gomod: "module meshlab.local/broken\n\ngo 1.23\n", mainSrc: "package main\n\nfunc main() { undefinedThing() }\n", packages: []string{"."}, outputs: []string{"broken"}}.
		build(context.Background(), t.Logf, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "undefined: undefinedThing") {
		t.Fatalf("err = %v, want the compiler's message", err)
	}
}
