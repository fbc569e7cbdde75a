package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/log"
)

func writeTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckImageArchive(t *testing.T) {
	dir := t.TempDir()
	// blobs/ sorts first: its header, then 4096 bytes of body that a cut at 2000 truncates.
	good := writeTar(t, map[string]string{"manifest.json": "[]", "blobs/sha256/abc": strings.Repeat("x", 4096)})
	cases := map[string]struct {
		data []byte // nil: no file
		want string // "" means accepted
	}{
		"docker-save.tar": {good, ""},
		"oci.tar":         {writeTar(t, map[string]string{"./index.json": "{}", "oci-layout": "{}"}), ""},
		"missing.tar":     {nil, "no such file"},
		"text.tar":        {[]byte("garbage, not a tar archive at all\n"), "not a readable tar archive"},
		"truncated.tar":   {good[:2000], "truncated or corrupt"},
		"plain.tar":       {writeTar(t, map[string]string{"hello.txt": "hi"}), "no manifest.json"},
		"empty.tar":       {writeTar(t, nil), "no manifest.json"},
	}
	for name, c := range cases {
		path := filepath.Join(dir, name)
		if c.data != nil {
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := CheckImageArchive(path)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", name, err)
		case c.want != "" && (!errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want ErrBadImage saying %q", name, err, c.want)
		}
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                      "docker.io/library/busybox:latest",
		"me/app:v1":                    "docker.io/me/app:v1",
		"meshlab.local/tiny:apps":      "meshlab.local/tiny:apps",
		"localhost/app":                "localhost/app:latest",
		"registry:5000/team/app":       "registry:5000/team/app:latest",
		"ghcr.io/a/b@sha256:0123abcd":  "ghcr.io/a/b@sha256:0123abcd",
		"registry:5000/team/app:1.2.3": "registry:5000/team/app:1.2.3",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// An image Docker lacks is reported before the cluster is even looked at, and nothing is loaded.
func TestLoadDockerImagesChecksEveryImageFirst(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("docker is not running")
	}
	c := New("meshlab-no-such-cluster", "", log.Noop)
	err := c.LoadDockerImages(context.Background(), []string{"meshlab.local/no-such:1", "meshlab.local/no-such:2", "meshlab.local/no-such:1"}, nil)
	if !errors.Is(err, ErrBadImage) {
		t.Fatalf("LoadDockerImages: %v, want ErrBadImage", err)
	}
	if n := strings.Count(err.Error(), "is not present in Docker"); n != 2 {
		t.Errorf("want both missing images named once each, got %d:\n%v", n, err)
	}
}

func TestLoadIntoMissingClusterIsEnvironment(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "img.tar")
	if err := os.WriteFile(path, writeTar(t, map[string]string{"manifest.json": "[]"}), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New("meshlab-no-such-cluster", "", log.Noop)
	if err := c.LoadImageArchives(context.Background(), []string{path}, nil); !errors.Is(err, ErrEnvironment) {
		t.Errorf("LoadImageArchives into a missing cluster: %v, want ErrEnvironment", err)
	}
}
