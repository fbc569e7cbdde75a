// Package nodeimage builds a kind node image with no registry at all: a Debian tree from debootstrap,
// Kubernetes, etcd and CoreDNS compiled from the Go module proxy, kind's own base-image files, and the
// control-plane images preloaded into the node's containerd. Results are cached by version: the Go build
// cache, the Debian tree and the finished image (a Docker image whose tag encodes the recipe).
package nodeimage

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/log"
)

// recipeVersion changes whenever the way a node image is made changes, so cached images are rebuilt.
const recipeVersion = "1"

// Defaults: the one recent Kubernetes release whose staging modules are all on the module proxy here.
const (
	DefaultKubeVersion    = "v1.33.13"
	DefaultEtcdVersion    = "v3.5.24"
	DefaultCoreDNSVersion = "v1.12.0"
	DefaultSuite          = "bookworm"
	DefaultMirror         = "http://deb.debian.org/debian"
	imageRepository       = "meshlab.local/node"
)

//go:embed files/pause.go.txt
var pauseMain string

//go:embed files/etcd.go.txt
var etcdMain string

// Options say what to build and where to cache it.
type Options struct {
	KubeVersion    string
	EtcdVersion    string
	CoreDNSVersion string
	Suite          string
	Mirror         string
	CacheDir       string // default: $XDG_CACHE_HOME/meshlab or ~/.cache/meshlab
	Force          bool   // rebuild the image even when it exists
}

func (o *Options) defaults() error {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&o.KubeVersion, DefaultKubeVersion)
	set(&o.EtcdVersion, DefaultEtcdVersion)
	set(&o.CoreDNSVersion, DefaultCoreDNSVersion)
	set(&o.Suite, DefaultSuite)
	set(&o.Mirror, DefaultMirror)
	if o.CacheDir == "" {
		dir, err := CacheDir()
		if err != nil {
			return err
		}
		o.CacheDir = dir
	}
	if !strings.HasPrefix(o.KubeVersion, "v1.") {
		return fmt.Errorf("kubernetes version %q: want v1.MINOR.PATCH", o.KubeVersion)
	}
	return nil
}

// CacheDir is meshlab's cache root.
func CacheDir() (string, error) {
	if d := os.Getenv("MESHLAB_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory (set MESHLAB_CACHE): %w", err)
	}
	return filepath.Join(base, "meshlab"), nil
}

// Image is the tag of the node image these options produce.
func (o Options) Image() string {
	_ = o.defaults()
	h := sha256.New()
	fmt.Fprintln(h, recipeVersion, o.KubeVersion, o.EtcdVersion, o.CoreDNSVersion, o.Suite, kindVersion())
	fmt.Fprintln(h, strings.Join(nodePackages, ","), strings.Join(kubeProxyPackages, ","))
	return fmt.Sprintf("%s:%s-%s", imageRepository, o.KubeVersion, hex.EncodeToString(h.Sum(nil))[:8])
}

// Exists reports whether a Docker image exists locally.
func Exists(ctx context.Context, image string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", image).Run() == nil
}

// Build makes the node image unless it is cached, and returns its tag.
func Build(ctx context.Context, opts Options, steps log.Status, logf func(string, ...any)) (string, error) {
	if err := opts.defaults(); err != nil {
		return "", err
	}
	image := opts.Image()
	if !opts.Force && Exists(ctx, image) {
		logf("node image %s is cached", image)
		return image, nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("building a node image compiles Kubernetes and needs the go tool on PATH: %w", err)
	}
	// The image ends in Docker: say now, not after the long build, when its daemon does not answer.
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: the Docker daemon does not answer (`docker version`: %v: %s): start it, or run `meshlab host prepare`",
			cluster.ErrEnvironment, err, strings.TrimSpace(string(out)))
	}
	work := filepath.Join(opts.CacheDir, "nodeimage")
	rootfs := filepath.Join(work, "rootfs-"+opts.Suite)

	// Debian's tree comes from the network while Go compiles: run them side by side.
	var wg sync.WaitGroup
	var debErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		debErr = debootstrap(ctx, rootfs, opts.Suite, opts.Mirror, logf)
	}()

	bins := map[string]string{}
	var kubeBin string
	err := steps.Step(fmt.Sprintf("Building Kubernetes %s from Go modules", opts.KubeVersion), func() error {
		var err error
		kubeBin, err = goModule{
			dir:      filepath.Join(work, "kube-"+opts.KubeVersion),
			gomod:    kubeGoMod(opts.KubeVersion),
			packages: prefixAll("k8s.io/kubernetes/cmd/", KubeBinaries),
			outputs:  KubeBinaries,
			ldflags:  kubeLDFlags(opts.KubeVersion),
		}.build(ctx, logf, func(d string) { log.Progress(steps, d) })
		for _, b := range KubeBinaries {
			bins[b] = filepath.Join(kubeBin, b)
		}
		return err
	})
	if err != nil {
		wg.Wait()
		return "", err
	}
	err = steps.Step(fmt.Sprintf("Building etcd %s, CoreDNS %s and pause", opts.EtcdVersion, opts.CoreDNSVersion), func() error {
		for _, m := range []struct {
			name string
			mod  goModule
		}{
			{"etcd", goModule{dir: filepath.Join(work, "etcd-"+opts.EtcdVersion), mainSrc: etcdMain, packages: []string{"."}, outputs: []string{"etcd"},
				gomod: fmt.Sprintf("module meshlab.local/etcd\n\ngo 1.23\n\nrequire go.etcd.io/etcd/server/v3 %s\n", opts.EtcdVersion)}},
			{"coredns", goModule{dir: filepath.Join(work, "coredns-"+opts.CoreDNSVersion), packages: []string{"github.com/coredns/coredns"}, outputs: []string{"coredns"},
				gomod: fmt.Sprintf("module meshlab.local/corednsbuild\n\ngo 1.23\n\nrequire github.com/coredns/coredns %s\n", opts.CoreDNSVersion)}},
			{"pause", goModule{dir: filepath.Join(work, "pause"), mainSrc: pauseMain, packages: []string{"."}, outputs: []string{"pause"},
				gomod: "module meshlab.local/pause\n\ngo 1.23\n"}},
		} {
			m.mod.ldflags = "-s -w"
			log.Progress(steps, m.name)
			bin, err := m.mod.build(ctx, logf, func(d string) { log.Progress(steps, m.name+": "+d) })
			if err != nil {
				return err
			}
			bins[m.name] = filepath.Join(bin, m.name)
		}
		return nil
	})
	if err != nil {
		wg.Wait()
		return "", err
	}
	if err := steps.Step("Creating the Debian "+opts.Suite+" node tree", func() error { wg.Wait(); return debErr }); err != nil {
		return "", err
	}
	kindFiles, err := kindBaseFiles(ctx)
	if err != nil {
		return "", err
	}
	if err := steps.Step("Assembling the node filesystem", func() error {
		return customize(ctx, rootfs, kindFiles, kubeBin, opts.KubeVersion)
	}); err != nil {
		return "", err
	}
	imagesTar := filepath.Join(work, "images-"+opts.KubeVersion+".tar")
	if err := steps.Step("Packing Kubernetes component images", func() error {
		images, err := componentImages(ctx, bins["kubeadm"], opts.KubeVersion, bins, rootfs)
		if err != nil {
			return err
		}
		return tarball.MultiRefWriteToFile(imagesTar, images)
	}); err != nil {
		return "", err
	}
	if err := steps.Step("Importing the node image and preloading its images", func() error {
		return importAndPreload(ctx, rootfs, imagesTar, image, logf)
	}); err != nil {
		return "", err
	}
	os.Remove(imagesTar)
	return image, nil
}

func prefixAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// kindVersion is the version of the kind module meshlab was built with; its base-image files must match
// the kind library that creates the cluster.
func kindVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "sigs.k8s.io/kind" {
				return d.Version
			}
		}
	}
	return "v0.33.0"
}

// kindBaseFiles returns the directory of kind's node base-image files in the module cache.
func kindBaseFiles(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/kind@"+kindVersion())
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("downloading the kind module for its base-image files: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("parsing go mod download output: %v", err)
	}
	return filepath.Join(mod.Dir, "images/base/files"), nil
}
