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
	// LabRef is the stable name `meshlab up` also gives the lab's meshlab image on every node, so that
	// committed manifests (the echo app's) can name it although its real tag changes with each build.
	LabRef = Repository + ":lab"
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
	img, err := build(binaryPath, nil, []string{BinaryPath}, "meshlab")
	if err != nil {
		return nil, name.Tag{}, err
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

// EchoNames are the names the echo stand-in image installs the binary under, besides meshlab's own:
// Istio's echo image has its server as the entrypoint and its client on the PATH, and the Gateway API
// conformance suite runs `client URL ...` in the container. meshlab dispatches on the name it is called
// by (cli.Args).
var EchoNames = []string{"server", "client"}

// BuildEcho packs the binary as a stand-in for Istio's echo image (the one the Gateway API conformance
// suite's mesh manifests name, e.g. registry.k8s.io/gateway-api/echo-advanced:v1.5.1), tagged ref: the
// same layer as Build's plus /usr/local/bin/server and /usr/local/bin/client, symlinks to meshlab, and
// /usr/local/bin/server as the entrypoint, so the manifests' args (--port=8080 --tcp=9090 ...) reach
// `meshlab echo server`.
func BuildEcho(binaryPath, ref string) (v1.Image, name.Tag, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("echo image reference %q: %w", ref, err)
	}
	var links []entry
	for _, n := range EchoNames {
		links = append(links, entry{path: "usr/local/bin/" + n, mode: 0o777, link: "meshlab"})
	}
	img, err := build(binaryPath, links, []string{"/usr/local/bin/server"}, "meshlab echo (stand-in for Istio's echo app)")
	if err != nil {
		return nil, name.Tag{}, err
	}
	return img, tag, nil
}

// build packs the binary and the extra entries into a one-layer image with entrypoint.
func build(binaryPath string, extra []entry, entrypoint []string, title string) (v1.Image, error) {
	arch, err := inspect(binaryPath)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", binaryPath, err)
	}
	layerTar, err := rootfs(bin, extra...)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "meshlab image build"},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   title,
		"org.opencontainers.image.version": version.String(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}

	return img, nil
}

// entry is one file, directory (data nil, link empty) or symlink (link set) of the layer.
type entry struct {
	path string
	mode int64
	data []byte
	link string
}

// rootfs returns the layer's uncompressed tar: directories, passwd, group, the binary and the extra
// entries, all owned by root with fixed times.
func rootfs(bin []byte, extra ...entry) ([]byte, error) {
	entries := append([]entry{
		{path: "etc/", mode: 0o755},
		{path: "etc/group", mode: 0o644, data: []byte(group)},
		{path: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "root/", mode: 0o700},
		{path: "tmp/", mode: 0o1777},
		{path: "usr/", mode: 0o755},
		{path: "usr/local/", mode: 0o755},
		{path: "usr/local/bin/", mode: 0o755},
		{path: BinaryPath[1:], mode: 0o755, data: bin},
	}, extra...)
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
		switch {
		case e.link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.link
		case e.data == nil:
			hdr.Typeflag = tar.TypeDir
		default:
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
