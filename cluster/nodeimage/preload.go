package nodeimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// importAndPreload turns the node tree into a Docker image, then preloads the component images into its
// containerd the way kind does: start containerd inside a build container, `ctr images import` pinned
// and unpacked later, commit the container as the final image.
func importAndPreload(ctx context.Context, rootfs, imagesTar, image string, logf func(string, ...any)) error {
	base := image + "-base"
	tarCmd := exec.CommandContext(ctx, "tar", "-C", rootfs, "--numeric-owner", "--exclude=./.meshlab-debootstrap-done", "-c", ".")
	imp := exec.CommandContext(ctx, "docker", "import",
		"--change", "ENV container=docker",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"-", base)
	// An OS pipe whose ends only the two children hold: if docker import dies (no daemon), tar gets EPIPE
	// and ends instead of blocking forever on a reader this process keeps open (cmd.StdoutPipe's).
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	tarCmd.Stdout, imp.Stdin = w, r
	var impOut, tarErr strings.Builder
	imp.Stdout, imp.Stderr = &impOut, &impOut
	tarCmd.Stderr = &tarErr
	if err := imp.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("docker import: %w", err)
	}
	r.Close()
	err = tarCmd.Start()
	w.Close()
	if err != nil {
		imp.Wait()
		return fmt.Errorf("tar of the node tree: %w", err)
	}
	impErr, tErr := imp.Wait(), tarCmd.Wait()
	if impErr != nil {
		return fmt.Errorf("docker import: %w: %s", impErr, strings.TrimSpace(impOut.String()))
	}
	if tErr != nil {
		return fmt.Errorf("tar of the node tree: %w: %s", tErr, strings.TrimSpace(tarErr.String()))
	}
	defer exec.Command("docker", "rmi", base).Run() //nolint:errcheck // only an intermediate tag

	container := fmt.Sprintf("meshlab-nodeimage-build-%d", time.Now().UnixNano())
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	if _, err := run("run", "-d", "--privileged", "--name", container, "--entrypoint", "sleep",
		"-v", imagesTar+":/meshlab-images.tar:ro", base, "infinity"); err != nil {
		return err
	}
	defer exec.Command("docker", "rm", "-f", container).Run() //nolint:errcheck // best-effort cleanup

	if _, err := run("exec", container, "sh", "-c", "containerd >/var/log/containerd-preload.log 2>&1 &"); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := run("exec", container, "ctr", "version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := run("exec", container, "cat", "/var/log/containerd-preload.log")
			return fmt.Errorf("containerd did not start in the build container: %s", tail(log, 20))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if _, err := run("exec", container, "ctr", "-n", "k8s.io", "images", "import",
		"--label=io.cri-containerd.pinned=pinned", "--no-unpack", "/meshlab-images.tar"); err != nil {
		return err
	}
	out, _ := run("exec", container, "ctr", "-n", "k8s.io", "images", "ls", "-q")
	logf("preloaded images:\n%s", out)
	// PID 1 of the build container is sleep, which does not reap: containerd stays a zombie, so wait
	// only for live processes.
	if _, err := run("exec", container, "sh", "-c", "pkill containerd; while pgrep -r R,S,D,T containerd >/dev/null; do sleep 0.1; done; rm -f /var/log/containerd-preload.log"); err != nil {
		return err
	}
	if _, err := run("commit",
		"--change", "ENV container=docker",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"--change", `CMD []`,
		container, image); err != nil {
		return err
	}
	return nil
}
