// Package image packs the running meshlab binary into an OCI image, like ko but with an empty base:
// nothing is pulled, the image holds only the static binary plus the few files a pod needs
// (/etc/passwd, /etc/group, /tmp). Every header and timestamp is fixed, so the same binary always
// gives the same digest, and the image is tagged by that digest.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/meshlab/meshlab/version"
)

const (
	// Repository is where meshlab images live; the registry does not exist, images are only loaded
	// into nodes, so pods must not pull them (imagePullPolicy IfNotPresent or Never).
	Repository = "meshlab.local/meshlab"
	// BinaryPath is the binary's path inside the image and the image's entrypoint.
	BinaryPath = "/usr/local/bin/meshlab"

	// ProxyUID is istio-proxy, the user meshlab's proxies run as; capture rules exempt it.
	ProxyUID = 1337
	// AppUID is the non-root user for app pods (bookinfo, sleep).
	AppUID = 1000
)

// epoch is every timestamp in the image, so builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

const passwd = `root:x:0:0:root:/root:/sbin/nologin
istio-proxy:x:1337:1337:istio-proxy:/tmp:/sbin/nologin
meshlab:x:1000:1000:meshlab:/tmp:/sbin/nologin
`

const group = `root:x:0:
istio-proxy:x:1337:
meshlab:x:1000:
`

// Build packs the static linux binary at binaryPath into a one-layer image and returns it with its
// content tag, Repository:sha-<first 12 hex digits of the manifest digest>.
func Build(binaryPath string) (v1.Image, name.Tag, error) {
	arch, err := inspect(binaryPath)
	if err != nil {
		return nil, name.Tag{}, err
	}
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("reading %s: %w", binaryPath, err)
	}
	layerTar, err := rootfs(bin)
	if err != nil {
		return nil, name.Tag{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("creating layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "meshlab image build"},
	})
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "meshlab",
		"org.opencontainers.image.version": version.String(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("setting config: %w", err)
	}

	digest, err := img.Digest()
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("computing digest: %w", err)
	}
	tag, err := name.NewTag(Repository + ":sha-" + digest.Hex[:12])
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("tagging image: %w", err)
	}
	return img, tag, nil
}

// rootfs returns the layer's uncompressed tar: directories, passwd, group and the binary, all owned
// by root with fixed times.
func rootfs(bin []byte) ([]byte, error) {
	entries := []struct {
		path string
		mode int64
		data []byte // nil for a directory
	}{
		{"etc/", 0o755, nil},
		{"etc/group", 0o644, []byte(group)},
		{"etc/passwd", 0o644, []byte(passwd)},
		{"root/", 0o700, nil},
		{"tmp/", 0o1777, nil},
		{"usr/", 0o755, nil},
		{"usr/local/", 0o755, nil},
		{"usr/local/bin/", 0o755, nil},
		{BinaryPath[1:], 0o755, bin},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.path,
			Mode:    e.mode,
			ModTime: epoch,
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatPAX,
		}
		if e.data == nil {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing tar header for %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing %s to layer: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as a docker-compatible tarball (what `docker load` and `ctr images import`
// take) tagged with tag. It writes a temporary file and renames it, so path never holds half an image.
func WriteTarball(path string, img v1.Image, tag name.Tag) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".meshlab-image-*.tar")
	if err != nil {
		return fmt.Errorf("writing tarball %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if err := tarball.Write(tag, img, f); err != nil {
		f.Close()
		return fmt.Errorf("writing tarball %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing tarball %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing tarball %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing tarball %s: %w", path, err)
	}
	return nil
}
