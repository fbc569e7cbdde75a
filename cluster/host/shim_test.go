package host

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestStripFromSpecCreate(t *testing.T) {
	dir := t.TempDir()
	spec := `{"ociVersion":"1.0.2","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"],"permitted":["CAP_NET_ADMIN"]}},"root":{"path":"rootfs"}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--root", "/run/runc", "--log", "/x/log.json", "--systemd-cgroup", "create", "--bundle", dir, "--pid-file", "p", "id1"}
	if err := stripFromSpec(args); err != nil {
		t.Fatalf("stripFromSpec() = %v", err)
	}
	var got struct {
		Process struct{ Capabilities map[string][]string }
		Root    struct{ Path string }
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for set, caps := range got.Process.Capabilities {
		if slices.Contains(caps, droppedCapability) {
			t.Errorf("set %s still has %s: %v", set, droppedCapability, caps)
		}
	}
	if want := []string{"CAP_CHOWN"}; !slices.Equal(got.Process.Capabilities["bounding"], want) {
		t.Errorf("bounding = %v, want %v", got.Process.Capabilities["bounding"], want)
	}
	if got.Root.Path != "rootfs" {
		t.Errorf("other fields lost: root.path = %q", got.Root.Path)
	}
	if st, _ := os.Stat(filepath.Join(dir, "config.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", st.Mode().Perm())
	}
}

func TestStripFromSpecExec(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "process.json")
	os.WriteFile(p, []byte(`{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"]}}`), 0o644)
	if err := stripFromSpec([]string{"--root", "/r", "exec", "--process", p, "--detach", "id"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if string(raw) != `{"args":["sh"],"capabilities":{"bounding":["CAP_KILL"]}}` {
		t.Errorf("process spec = %s", raw)
	}
}

func TestStripFromSpecLeavesOtherCommandsAlone(t *testing.T) {
	for _, args := range [][]string{{"--root", "/r", "state", "id"}, {"delete", "--force", "id"}, {"--version"}} {
		if err := stripFromSpec(args); err != nil {
			t.Errorf("stripFromSpec(%v) = %v", args, err)
		}
	}
}

func TestMergeDaemonConfigKeepsUserKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "daemon.json")
	os.WriteFile(p, []byte(`{"log-driver":"json-file","runtimes":{"nvidia":{"path":"nvidia-container-runtime"}}}`), 0o644)
	set := map[string]any{"default-runtime": ShimName, "runtimes": map[string]any{ShimName: map[string]any{"path": ShimPath}}}
	changed, err := mergeDaemonConfig(p, set)
	if err != nil || !changed {
		t.Fatalf("mergeDaemonConfig() = %v, %v; want changed", changed, err)
	}
	var cfg map[string]any
	raw, _ := os.ReadFile(p)
	json.Unmarshal(raw, &cfg)
	rts := cfg["runtimes"].(map[string]any)
	if cfg["log-driver"] != "json-file" || rts["nvidia"] == nil || rts[ShimName] == nil || cfg["default-runtime"] != ShimName {
		t.Errorf("merged config = %s", raw)
	}
	if _, err := os.Stat(p + ".meshlab-backup"); err != nil {
		t.Errorf("no backup of the user's file: %v", err)
	}
	if changed, _ := mergeDaemonConfig(p, set); changed {
		t.Error("second merge reported a change")
	}
}

func TestMergeDaemonConfigRefusesBadJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "daemon.json")
	os.WriteFile(p, []byte(`{"oops"`), 0o644)
	if _, err := mergeDaemonConfig(p, map[string]any{"a": "b"}); err == nil {
		t.Fatal("no error for invalid daemon.json")
	}
	if raw, _ := os.ReadFile(p); string(raw) != `{"oops"` {
		t.Errorf("invalid file was modified: %s", raw)
	}
}
