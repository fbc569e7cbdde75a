package nodeimage

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/meshlab/meshlab/cluster/host"
)

// nodePackages is what a kind node needs from Debian: systemd as init, the container runtime, the
// networking tools kubelet and kube-proxy call, and the CNI plugins (bridge, host-local, loopback).
var nodePackages = []string{
	"systemd", "systemd-sysv", "dbus", "iptables", "nftables", "conntrack", "iproute2", "ethtool", "util-linux",
	"mount", "kmod", "libseccomp2", "pigz", "ca-certificates", "jq", "procps", "bash", "e2fsprogs",
	"containerd", "runc", "containernetworking-plugins",
}

// debootstrap makes a minimal Debian root filesystem in dir once; a marker file records success so an
// interrupted run starts over instead of using half a tree.
func debootstrap(ctx context.Context, dir, suite, mirror string, logf func(string, ...any)) error {
	marker := filepath.Join(dir, ".meshlab-debootstrap-done")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		r := host.Check(ctx)
		if !r.Root || !r.Debian {
			return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w", err)
		}
		logf("installing debootstrap from Debian's packages")
		if err := host.AptInstall(ctx, "debootstrap"); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	logf("debootstrap %s into %s", suite, dir)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(nodePackages, ","), suite, dir, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %w\n%s", err, tail(string(out), 20))
	}
	return os.WriteFile(marker, nil, 0o644)
}

// customize turns the Debian tree into a kind node: kind's own base-image files (from the kind module),
// Kubernetes' node binaries, systemd set up the way kind's Dockerfile does, containerd configured for
// kind, and the CNI plugins where containerd looks for them. Every step is idempotent.
func customize(ctx context.Context, root, kindFiles, kubeBin, kubeVersion string) error {
	// kind's base image files: scripts 0755, everything else 0644.
	err := filepath.WalkDir(kindFiles, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(kindFiles, path)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/local/bin/") || strings.HasPrefix(rel, "kind/bin/") {
			mode = 0o755
		}
		return copyFile(path, filepath.Join(root, rel), mode)
	})
	if err != nil {
		return fmt.Errorf("copying kind's base-image files: %w", err)
	}
	for _, b := range []string{"kubelet", "kubeadm", "kubectl"} {
		if err := copyFile(filepath.Join(kubeBin, b), filepath.Join(root, "usr/bin", b), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "kind/version"), []byte(kubeVersion), 0o644); err != nil {
		return err
	}
	// kind's containerd unit runs /usr/local/bin/containerd; Debian installs it in /usr/bin.
	if err := symlink("/usr/bin/containerd", filepath.Join(root, "usr/local/bin/containerd")); err != nil {
		return err
	}
	// containerd's CRI plugin looks for CNI plugins in /opt/cni/bin; Debian installs them in /usr/lib/cni.
	if err := os.MkdirAll(filepath.Join(root, "opt/cni"), 0o755); err != nil {
		return err
	}
	if err := symlink("/usr/lib/cni", filepath.Join(root, "opt/cni/bin")); err != nil {
		return err
	}
	if err := writeContainerdConfig(root); err != nil {
		return err
	}
	if err := writeCRIBaseSpec(ctx, root); err != nil {
		return err
	}
	for _, d := range []string{"etc/kubernetes/manifests", "etc/cni/net.d", "var/lib/kubelet"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	return systemdSetup(ctx, root)
}

// writeContainerdConfig takes kind's config.toml without the fuse-overlayfs proxy plugin (only used by
// rootless kind, and its socket never exists here).
func writeContainerdConfig(root string) error {
	p := filepath.Join(root, "etc/containerd/config.toml")
	raw, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading kind's containerd config: %w", err)
	}
	var out []string
	skip := false
	for _, line := range strings.Split(string(raw), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			skip = strings.HasPrefix(t, "[proxy_plugins")
		}
		if !skip {
			out = append(out, line)
		}
	}
	return os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o644)
}

// writeCRIBaseSpec creates the base OCI spec kind gives containerd's CRI plugin: containerd's default
// spec plus kind's hook that mounts the product UUID, without rlimits.
func writeCRIBaseSpec(ctx context.Context, root string) error {
	out, err := exec.CommandContext(ctx, "chroot", root, "ctr", "oci", "spec").Output()
	if err != nil {
		return fmt.Errorf("ctr oci spec: %w", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(out, &spec); err != nil {
		return fmt.Errorf("parsing ctr oci spec: %w", err)
	}
	if proc, ok := spec["process"].(map[string]any); ok {
		delete(proc, "rlimits")
	}
	hooks, _ := spec["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	hooks["createContainer"] = []any{map[string]any{"path": "/kind/bin/mount-product-files.sh"}}
	spec["hooks"] = hooks
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "etc/containerd/cri-base.json"), b, 0o644)
}

// systemdSetup mirrors kind's Dockerfile: no services but ours, no kmsg in journald, kubelet, containerd
// and undo-mount-hacks enabled, binfmt masked.
func systemdSetup(ctx context.Context, root string) error {
	globs := []string{
		"lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
		"lib/systemd/system/multi-user.target.wants/*",
		"etc/systemd/system/*.wants/*",
		"lib/systemd/system/local-fs.target.wants/*",
		"lib/systemd/system/sockets.target.wants/*udev*",
		"lib/systemd/system/sockets.target.wants/*initctl*",
		"lib/systemd/system/basic.target.wants/*",
	}
	for _, g := range globs {
		matches, _ := filepath.Glob(filepath.Join(root, g))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	journald := filepath.Join(root, "etc/systemd/journald.conf")
	raw, _ := os.ReadFile(journald)
	if !strings.Contains(string(raw), "\nReadKMsg=no") {
		if err := os.WriteFile(journald, append(raw, []byte("\nReadKMsg=no\n")...), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"systemctl", "enable", "kubelet.service", "containerd.service", "undo-mount-hacks.service"},
		{"systemctl", "mask", "systemd-binfmt.service"},
	} {
		if out, err := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst) // replace read-only or symlinked targets
	return os.WriteFile(dst, raw, mode)
}

func symlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	os.RemoveAll(link)
	return os.Symlink(target, link)
}
