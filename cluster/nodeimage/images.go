package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// kubeProxyPackages supply the iptables and conntrack tools kube-proxy execs; their files (from the
// node's Debian tree) are copied into the kube-proxy image.
var kubeProxyPackages = []string{
	"iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0",
	"libnetfilter-conntrack3", "libnfnetlink0", "conntrack", "libc6", "libgcc-s1",
}

// imageFile is one file of a component image.
type imageFile struct {
	path    string // in the image, absolute
	src     string // on the host; empty for a symlink
	link    string // symlink target
	content []byte // inline content when src is empty and link is empty
	mode    int64
}

// componentImages builds the images kubeadm asks for (it prints them with `config images list`) from
// the binaries just built: nothing is pulled.
func componentImages(ctx context.Context, kubeadm string, kubeVersion string, bins map[string]string, rootfs string) (map[name.Reference]v1.Image, error) {
	out, err := exec.CommandContext(ctx, kubeadm, "config", "images", "list", "--kubernetes-version", kubeVersion).Output()
	if err != nil {
		return nil, fmt.Errorf("kubeadm config images list: %w", err)
	}
	refs := strings.Fields(string(out))
	// containerd's sandbox image in kind's config may differ from kubeadm's pause tag; provide both.
	refs = append(refs, "registry.k8s.io/pause:3.10")
	images := map[name.Reference]v1.Image{}
	for _, r := range refs {
		ref, err := name.ParseReference(r)
		if err != nil {
			return nil, fmt.Errorf("parsing image %q from kubeadm: %w", r, err)
		}
		component := path.Base(ref.Context().RepositoryStr())
		files, entrypoint, err := imageContent(component, bins, rootfs)
		if err != nil {
			return nil, err
		}
		img, err := buildImage(files, entrypoint)
		if err != nil {
			return nil, fmt.Errorf("building image %s: %w", r, err)
		}
		images[ref] = img
	}
	return images, nil
}

// imageContent decides what goes into each component's image.
func imageContent(component string, bins map[string]string, rootfs string) ([]imageFile, []string, error) {
	binFile := func(bin, dst string) ([]imageFile, error) {
		src, ok := bins[bin]
		if !ok {
			return nil, fmt.Errorf("no %s binary was built for image %s", bin, component)
		}
		return []imageFile{{path: dst, src: src, mode: 0o755}}, nil
	}
	switch component {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd":
		f, err := binFile(component, "/usr/local/bin/"+component)
		return f, []string{"/usr/local/bin/" + component}, err
	case "kube-proxy":
		f, err := binFile(component, "/usr/local/bin/kube-proxy")
		if err != nil {
			return nil, nil, err
		}
		pkgFiles, err := debianPackageFiles(rootfs, kubeProxyPackages)
		if err != nil {
			return nil, nil, err
		}
		return append(f, pkgFiles...), []string{"/usr/local/bin/kube-proxy"}, nil
	case "coredns":
		f, err := binFile("coredns", "/coredns")
		return f, []string{"/coredns"}, err
	case "pause":
		f, err := binFile("pause", "/pause")
		return f, []string{"/pause"}, err
	}
	return nil, nil, fmt.Errorf("kubeadm wants image %q, which meshlab does not know how to build", component)
}

// debianPackageFiles lists the files of installed packages in rootfs (regular files and symlinks),
// plus the update-alternatives links that make `iptables` resolve.
func debianPackageFiles(rootfs string, pkgs []string) ([]imageFile, error) {
	out, err := exec.Command("chroot", append([]string{rootfs, "dpkg", "-L"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg -L %s in the node tree: %w", strings.Join(pkgs, " "), err)
	}
	paths := strings.Fields(string(out))
	for _, g := range []string{"/etc/alternatives/*tables*", "/usr/sbin/*tables*"} {
		m, _ := filepath.Glob(filepath.Join(rootfs, g))
		for _, p := range m {
			paths = append(paths, strings.TrimPrefix(p, rootfs))
		}
	}
	var files []imageFile
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "/usr/share/") {
			continue
		}
		seen[p] = true
		host := filepath.Join(rootfs, p)
		st, err := os.Lstat(host)
		if err != nil {
			continue // listed by dpkg but removed (e.g. diverted)
		}
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(host)
			files = append(files, imageFile{path: p, link: target, mode: 0o777})
		case st.Mode().IsRegular():
			files = append(files, imageFile{path: p, src: host, mode: int64(st.Mode().Perm())})
		}
	}
	return files, nil
}

var epoch = time.Unix(0, 0)

// buildImage makes a single-layer linux/amd64 image with fixed timestamps.
func buildImage(files []imageFile, entrypoint []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	dirs := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(f.path, "/")
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f.path, "/")
		if f.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: f.link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		content := f.content
		if f.src != "" {
			var err error
			if content, err = os.ReadFile(f.src); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.mode, Size: int64(len(content)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cfg)
}
