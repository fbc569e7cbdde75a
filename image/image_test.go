package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/meshlab/meshlab/version"
)

// goBuild compiles a one-file Go program into t.TempDir() and returns the binary's path.
func goBuild(t *testing.T, src string, cgo bool) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", out, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOFLAGS=")
	if cgo {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func staticBinary(t *testing.T) string {
	return goBuild(t, "package main\n\nfunc main() { println(\"hello from a static binary\") }\n", false)
}

func TestBuildConfig(t *testing.T) {
	img, _, err := Build(staticBinary(t))
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"entrypoint", cf.Config.Entrypoint, []string{"/usr/local/bin/meshlab"}},
		{"env", cf.Config.Env, []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		{"title label", cf.Config.Labels["org.opencontainers.image.title"], "meshlab"},
		{"version label", cf.Config.Labels["org.opencontainers.image.version"], version.String()},
		{"os", cf.OS, "linux"},
		{"architecture", cf.Architecture, runtime.GOARCH},
		{"created", cf.Created.Time.Equal(time.Unix(0, 0)), true},
		{"user", cf.Config.User, ""},
		{"layers", len(cf.RootFS.DiffIDs), 1},
		{"history", len(cf.History), 1},
		{"manifest media type", m.MediaType, types.OCIManifestSchema1},
		{"config media type", m.Config.MediaType, types.OCIConfigJSON},
		{"layer media type", m.Layers[0].MediaType, types.OCILayer},
	} {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	as, ok1 := a.([]string)
	bs, ok2 := b.([]string)
	if ok1 && ok2 {
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestLayerFiles(t *testing.T) {
	bin := staticBinary(t)
	img, _, err := Build(bin)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("Layers() = %d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	type file struct {
		mode    int64
		typ     byte
		content []byte
	}
	got := map[string]file{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading layer: %v", err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s mtime = %v, want the epoch", hdr.Name, hdr.ModTime)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = file{hdr.Mode, hdr.Typeflag, b}
		order = append(order, hdr.Name)
	}

	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]file{
		"etc/":                  {0o755, tar.TypeDir, nil},
		"etc/group":             {0o644, tar.TypeReg, nil},
		"etc/passwd":            {0o644, tar.TypeReg, nil},
		"root/":                 {0o700, tar.TypeDir, nil},
		"tmp/":                  {0o1777, tar.TypeDir, nil},
		"usr/":                  {0o755, tar.TypeDir, nil},
		"usr/local/":            {0o755, tar.TypeDir, nil},
		"usr/local/bin/":        {0o755, tar.TypeDir, nil},
		"usr/local/bin/meshlab": {0o755, tar.TypeReg, binData},
	}
	if len(got) != len(want) {
		t.Errorf("layer holds %v, want %d entries", order, len(want))
	}
	for path, w := range want {
		g, ok := got[path]
		if !ok {
			t.Errorf("layer lacks %s", path)
			continue
		}
		if g.mode != w.mode || g.typ != w.typ {
			t.Errorf("%s: mode %o type %c, want mode %o type %c", path, g.mode, g.typ, w.mode, w.typ)
		}
		if w.content != nil && !bytes.Equal(g.content, w.content) {
			t.Errorf("%s: content (%d bytes) differs from the binary (%d bytes)", path, len(g.content), len(w.content))
		}
	}

	for _, c := range []struct{ file, line string }{
		{"etc/passwd", "root:x:0:0:"},
		{"etc/passwd", "istio-proxy:x:1337:1337:"},
		{"etc/passwd", "meshlab:x:1000:1000:"},
		{"etc/group", "root:x:0:"},
		{"etc/group", "istio-proxy:x:1337:"},
		{"etc/group", "meshlab:x:1000:"},
	} {
		if !hasLinePrefix(string(got[c.file].content), c.line) {
			t.Errorf("%s has no line starting %q:\n%s", c.file, c.line, got[c.file].content)
		}
	}
}

func hasLinePrefix(s, prefix string) bool {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func TestReproducible(t *testing.T) {
	bin := staticBinary(t)
	img1, tag1, err := Build(bin)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	img2, tag2, err := Build(bin)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 || tag1 != tag2 {
		t.Errorf("two builds of one binary: %v %v and %v %v, want the same", d1, tag1, d2, tag2)
	}
	if !regexp.MustCompile(`^meshlab\.local/meshlab:sha-[0-9a-f]{12}$`).MatchString(tag1.String()) {
		t.Errorf("tag = %q, want meshlab.local/meshlab:sha-<12 hex>", tag1)
	}
	if got, want := tag1.TagStr(), "sha-"+d1.Hex[:12]; got != want {
		t.Errorf("tag = %q, want %q (from digest %v)", got, want, d1)
	}

	// Trailing bytes keep the ELF valid but change the content: the tag must change too.
	other := filepath.Join(t.TempDir(), "other")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	_, tag3, err := Build(other)
	if err != nil {
		t.Fatalf("Build(other) = %v", err)
	}
	if tag3 == tag1 {
		t.Errorf("different binaries share tag %v", tag1)
	}
}

func TestWriteTarball(t *testing.T) {
	img, tag, err := Build(staticBinary(t))
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	path := filepath.Join(t.TempDir(), "meshlab.tar")
	if err := WriteTarball(path, img, tag); err != nil {
		t.Fatalf("WriteTarball() = %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries after WriteTarball, want only the tarball", len(entries))
	}

	loaded, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("ImageFromPath(%v) = %v", tag, err)
	}
	for _, c := range []struct {
		name string
		get  func(v1.Image) (v1.Hash, error)
	}{
		{"config digest", v1.Image.ConfigName},
		{"layer digest", func(i v1.Image) (v1.Hash, error) {
			ls, err := i.Layers()
			if err != nil {
				return v1.Hash{}, err
			}
			return ls[0].Digest()
		}},
	} {
		want, err := c.get(img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.get(loaded)
		if err != nil {
			t.Fatalf("%s of reloaded image: %v", c.name, err)
		}
		if got != want {
			t.Errorf("reloaded %s = %v, want %v", c.name, got, want)
		}
	}

	// The docker manifest.json is what `docker load` and `ctr images import` read the name from.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatalf("LoadManifest() = %v", err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{tag.String()}) {
		t.Errorf("manifest.json = %+v, want one image tagged %s", m, tag)
	}
	cfgBlob := readTarEntry(t, path, m[0].Config)
	var cf v1.ConfigFile
	if err := json.Unmarshal(cfgBlob, &cf); err != nil {
		t.Fatalf("config in tarball: %v", err)
	}
	if cf.Architecture != runtime.GOARCH || cf.OS != "linux" {
		t.Errorf("tarball config platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
}

func readTarEntry(t *testing.T, path, entry string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", entry, path, err)
		}
		if hdr.Name == entry {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestCheckStatic(t *testing.T) {
	text := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		path      func(t *testing.T) string
		wantErr   bool
		notStatic bool
	}{
		{"static go binary", staticBinary, false, false},
		{"cgo binary", func(t *testing.T) string {
			if _, err := exec.LookPath("gcc"); err != nil {
				t.Skip("gcc not found")
			}
			return goBuild(t, "package main\n\n// int answer(void) { return 42; }\nimport \"C\"\n\nfunc main() { println(C.answer()) }\n", true)
		}, true, true},
		{"/bin/ls", func(t *testing.T) string {
			if _, err := os.Stat("/bin/ls"); err != nil {
				t.Skip("no /bin/ls")
			}
			return "/bin/ls"
		}, true, true},
		{"shell script", func(*testing.T) string { return text }, true, false},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t)
			err := CheckStatic(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckStatic(%s) = %v, want error: %v", path, err, tt.wantErr)
			}
			if errors.Is(err, ErrNotStatic) != tt.notStatic {
				t.Errorf("CheckStatic(%s) = %v; errors.Is(ErrNotStatic) = %v, want %v", path, err, !tt.notStatic, tt.notStatic)
			}
			if err != nil && !strings.Contains(err.Error(), "CGO_ENABLED=0") && tt.notStatic {
				t.Errorf("CheckStatic(%s) = %v, want a hint to build with CGO_ENABLED=0", path, err)
			}
			if _, _, berr := Build(path); (berr != nil) != tt.wantErr {
				t.Errorf("Build(%s) = %v, want error: %v", path, berr, tt.wantErr)
			}
		})
	}
}

func TestSelfBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := CheckStatic(exe)
	got, err := SelfBinary()
	if (err == nil) != (want == nil) {
		t.Fatalf("SelfBinary() = %q, %v; CheckStatic(%s) = %v", got, err, exe, want)
	}
	if err == nil && got != exe {
		t.Errorf("SelfBinary() = %q, want %q", got, exe)
	}
}

func TestBuildEcho(t *testing.T) {
	const ref = "registry.k8s.io/gateway-api/echo-advanced:v1.5.1"
	img, tag, err := BuildEcho(staticBinary(t), ref)
	if err != nil {
		t.Fatalf("BuildEcho() = %v", err)
	}
	if tag.String() != ref {
		t.Errorf("tag = %s, want %s", tag, ref)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/server"}) {
		t.Errorf("entrypoint = %v, want /usr/local/bin/server", cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("Layers() = %d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	links := map[string]string{}
	var haveBinary bool
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			links[hdr.Name] = hdr.Linkname
		}
		if hdr.Name == BinaryPath[1:] && hdr.Typeflag == tar.TypeReg {
			haveBinary = true
		}
	}
	if !haveBinary {
		t.Error("no meshlab binary in the echo image")
	}
	for _, n := range []string{"server", "client"} {
		if got := links["usr/local/bin/"+n]; got != "meshlab" {
			t.Errorf("usr/local/bin/%s -> %q, want meshlab", n, got)
		}
	}
	if _, _, err := BuildEcho(staticBinary(t), "not a reference!"); err == nil {
		t.Error("BuildEcho accepted a bad reference")
	}
}
