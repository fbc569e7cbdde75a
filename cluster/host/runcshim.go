package host

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
)

// ShimName is the file name the runc shim is installed under; meshlab runs as the shim when argv[0] has it.
const ShimName = "meshlab-runc"

// ShimPath is where Prepare installs the shim for dockerd.
const ShimPath = "/usr/local/libexec/meshlab/" + ShimName

// droppedCapability is missing from this host's bounding set, so runc fails to grant it to
// --privileged containers (kind nodes): "unable to apply caps: operation not permitted".
const droppedCapability = "CAP_SYS_RESOURCE"

// RunShim is the whole runc shim: it removes the capability the host cannot grant from the OCI spec
// that runc is about to use (config.json of the bundle on create/run, the process spec on exec), then
// execs the real runc with the same arguments. It never returns on success.
func RunShim(args []string) int {
	if err := stripFromSpec(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimName, err)
		return 1
	}
	runc, err := realRunc()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimName, err)
		return 1
	}
	err = syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "%s: exec %s: %v\n", ShimName, runc, err)
	return 1
}

func realRunc() (string, error) {
	if p := os.Getenv("MESHLAB_RUNC"); p != "" {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("finding the real runc: %w", err)
	}
	return p, nil
}

// stripFromSpec finds the spec file runc will read for this invocation and edits it in place.
func stripFromSpec(args []string) error {
	sub, rest := subcommand(args)
	switch sub {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return stripFile(filepath.Join(bundle, "config.json"), func(spec map[string]any) map[string]any {
			proc, _ := spec["process"].(map[string]any)
			return proc
		})
	case "exec":
		if p := flagValue(rest, "--process", "-p"); p != "" {
			return stripFile(p, func(spec map[string]any) map[string]any { return spec })
		}
	}
	return nil
}

// subcommand skips runc's global flags (all of which take a value except the boolean ones).
func subcommand(args []string) (string, []string) {
	boolFlags := map[string]bool{"--debug": true, "--systemd-cgroup": true, "--rootless": false, "--help": true, "-h": true, "--version": true, "-v": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) == 0 || a[0] != '-' {
			return a, args[i+1:]
		}
		if boolFlags[a] || containsEq(a) {
			continue
		}
		i++ // flag with a separate value
	}
	return "", nil
}

func containsEq(s string) bool {
	for _, c := range s {
		if c == '=' {
			return true
		}
	}
	return false
}

func flagValue(args []string, long, short string) string {
	for i, a := range args {
		switch {
		case (a == long || a == short) && i+1 < len(args):
			return args[i+1]
		case len(a) > len(long)+1 && a[:len(long)+1] == long+"=":
			return a[len(long)+1:]
		}
	}
	return ""
}

func stripFile(path string, process func(map[string]any) map[string]any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading OCI spec: %w", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("parsing OCI spec %s: %w", path, err)
	}
	proc := process(spec)
	if proc == nil || !stripCaps(proc) {
		return nil
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, st.Mode().Perm())
}

// stripCaps removes the capability from every set of process.capabilities; it reports whether it changed.
func stripCaps(proc map[string]any) bool {
	caps, _ := proc["capabilities"].(map[string]any)
	changed := false
	for set, v := range caps {
		list, _ := v.([]any)
		kept := slices.DeleteFunc(slices.Clone(list), func(c any) bool { return c == droppedCapability })
		if len(kept) != len(list) {
			caps[set] = kept
			changed = true
		}
	}
	return changed
}
