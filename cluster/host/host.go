// Package host checks and prepares the machine meshlab runs kind on: a reachable Docker engine, and the
// quirks of sandboxed VMs — a capability bounding set without CAP_SYS_RESOURCE (privileged containers then
// fail to start; meshlab installs a runc shim as dockerd's default runtime) and cgroup v1.
package host

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Report is what Check finds.
type Report struct {
	DockerCLI          bool   // a docker client is on PATH
	DockerEngine       string // server version, empty when unreachable
	DockerdInstalled   bool   // a dockerd binary exists on this machine
	DefaultRuntime     string // dockerd's default OCI runtime
	MissingSysResource bool   // CAP_SYS_RESOURCE is not in the bounding set
	CgroupV2           bool
	Root               bool
	Debian             bool
	Systemd            bool // systemd is PID 1 (so services are started with systemctl)
	EngineErr          string
}

// Problems lists what stops kind from working here, each with what to do about it.
func (r Report) Problems() []string {
	var p []string
	switch {
	case r.DockerEngine == "" && !r.DockerdInstalled:
		p = append(p, "no Docker engine is installed (no dockerd): install one, or as root on Debian run `meshlab host prepare`, which installs docker.io")
	case r.DockerEngine == "":
		p = append(p, fmt.Sprintf("the Docker engine is not reachable (%s): start dockerd, or run `meshlab host prepare` as root", r.EngineErr))
	}
	if r.MissingSysResource && r.DockerEngine != "" && r.DefaultRuntime != ShimName {
		p = append(p, "this machine's capability bounding set lacks CAP_SYS_RESOURCE, so privileged kind nodes cannot start: run `meshlab host prepare` as root (installs a runc shim as dockerd's default runtime)")
	}
	return p
}

// Check inspects the machine without changing it.
func Check(ctx context.Context) Report {
	r := Report{Root: os.Geteuid() == 0}
	_, err := exec.LookPath("docker")
	r.DockerCLI = err == nil
	_, err = exec.LookPath("dockerd")
	r.DockerdInstalled = err == nil
	if _, err := os.Stat("/etc/debian_version"); err == nil {
		r.Debian = true
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		r.Systemd = true
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		r.CgroupV2 = true
	}
	r.MissingSysResource = !hasBoundingCap(24) // CAP_SYS_RESOURCE
	if r.DockerCLI {
		out, err := output(ctx, "docker", "version", "--format", "{{.Server.Version}}")
		if err != nil {
			r.EngineErr = lastLine(out, err)
		} else {
			r.DockerEngine = strings.TrimSpace(out)
			rt, _ := output(ctx, "docker", "info", "--format", "{{.DefaultRuntime}}")
			r.DefaultRuntime = strings.TrimSpace(rt)
		}
	}
	return r
}

// hasBoundingCap reads CapBnd from /proc/self/status.
func hasBoundingCap(bit uint) bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return true
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || mask&(1<<bit) != 0
		}
	}
	return true
}

// Prepare makes the machine ready for kind: it installs Docker's engine from Debian when it is missing
// (root on Debian only), installs the runc shim when the capability quirk is present, merges the needed
// keys into /etc/docker/daemon.json (keeping everything else the user had), and (re)starts dockerd.
func Prepare(ctx context.Context, logf func(string, ...any)) (Report, error) {
	r := Check(ctx)
	if len(r.Problems()) == 0 {
		return r, nil
	}
	if !r.Root {
		return r, fmt.Errorf("preparing the host needs root: %s", strings.Join(r.Problems(), "; "))
	}
	if !r.DockerdInstalled || !r.DockerCLI {
		if !r.Debian {
			return r, errors.New("no Docker engine and this is not Debian: install Docker, then run meshlab again")
		}
		logf("installing Docker from Debian's packages (docker.io)")
		if err := AptInstall(ctx, "docker.io"); err != nil {
			return r, err
		}
	}
	changed := false
	if r.MissingSysResource {
		self, err := os.Executable()
		if err != nil {
			return r, fmt.Errorf("finding meshlab's own binary: %w", err)
		}
		if err := installFile(self, ShimPath); err != nil {
			return r, fmt.Errorf("installing the runc shim: %w", err)
		}
		logf("installed runc shim %s (drops %s from container specs)", ShimPath, droppedCapability)
		c, err := mergeDaemonConfig("/etc/docker/daemon.json", map[string]any{
			"default-runtime": ShimName,
			"runtimes":        map[string]any{ShimName: map[string]any{"path": ShimPath}},
		})
		if err != nil {
			return r, err
		}
		changed = c
	}
	if err := startDockerd(ctx, r, changed, logf); err != nil {
		return r, err
	}
	r = Check(ctx)
	if p := r.Problems(); len(p) > 0 {
		return r, fmt.Errorf("host still not ready: %s", strings.Join(p, "; "))
	}
	return r, nil
}

// AptInstall installs Debian packages (root only).
func AptInstall(ctx context.Context, pkgs ...string) error {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	upd := exec.CommandContext(ctx, "apt-get", "update")
	upd.Env = env
	if out, err := upd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, lastLine(string(out), err))
	}
	inst := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
	inst.Env = env
	if out, err := inst.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(pkgs, " "), err, lastLine(string(out), err))
	}
	return nil
}

// installFile copies src to dst atomically (dst may be the running shim).
func installFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// mergeDaemonConfig sets keys in dockerd's JSON config, keeping all others; it reports whether the file changed.
func mergeDaemonConfig(path string, set map[string]any) (bool, error) {
	cfg := map[string]any{}
	raw, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(raw))) > 0:
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return false, fmt.Errorf("%s is not valid JSON (left untouched): %w", path, err)
		}
	case err != nil && !os.IsNotExist(err):
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	before, _ := json.Marshal(cfg)
	for k, v := range set {
		if sub, ok := v.(map[string]any); ok {
			existing, _ := cfg[k].(map[string]any)
			if existing == nil {
				existing = map[string]any{}
			}
			for sk, sv := range sub {
				existing[sk] = sv
			}
			cfg[k] = existing
			continue
		}
		cfg[k] = v
	}
	after, _ := json.Marshal(cfg)
	if string(before) == string(after) {
		return false, nil
	}
	pretty, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if len(raw) > 0 {
		if err := os.WriteFile(path+".meshlab-backup", raw, 0o644); err != nil {
			return false, fmt.Errorf("backing up %s: %w", path, err)
		}
	}
	return true, os.WriteFile(path, append(pretty, '\n'), 0o644)
}

const dockerdLog = "/var/log/meshlab-dockerd.log"

// startDockerd starts dockerd, or restarts it when its configuration changed.
func startDockerd(ctx context.Context, r Report, restart bool, logf func(string, ...any)) error {
	if r.Systemd {
		verb := "start"
		if restart {
			verb = "restart"
		}
		logf("%sing docker with systemctl", verb)
		if out, err := exec.CommandContext(ctx, "systemctl", verb, "docker").CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl %s docker: %v: %s", verb, err, out)
		}
		return waitEngine(ctx, 60*time.Second)
	}
	if r.DockerEngine != "" && !restart {
		return nil
	}
	if r.DockerEngine != "" {
		logf("restarting dockerd to pick up its new runtime")
		if err := stopDockerd(ctx); err != nil {
			return err
		}
	}
	logf("starting dockerd (no systemd here); its log is %s", dockerdLog)
	logFile, err := os.OpenFile(dockerdLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("dockerd")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive meshlab
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaped only if it dies while we wait
	if err := waitEngine(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("%w (see %s)", err, dockerdLog)
	}
	return nil
}

func stopDockerd(ctx context.Context) error {
	raw, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		return fmt.Errorf("dockerd is running but not under systemd and without /var/run/docker.pid: restart it yourself")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("parsing /var/run/docker.pid: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping dockerd (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("dockerd (pid %d) did not stop within 30s", pid)
}

func waitEngine(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := output(ctx, "docker", "version", "--format", "{{.Server.Version}}")
		if err == nil {
			return nil
		}
		last = lastLine(out, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("docker engine not reachable after %s: %s", timeout, last)
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func lastLine(out string, err error) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	if err != nil {
		return err.Error()
	}
	return ""
}
