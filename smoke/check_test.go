package smoke

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// run starts c's container and checks it: what its check says, then (for a process still running) that
// it runs as the uid and gid, and with the capabilities, it has in the cluster.
func run(ctx context.Context, t *testing.T, f *fixtures, ref string, c component) {
	name := fmt.Sprintf("meshlab-smoke-%s-%d", c.name, os.Getpid())
	req, err := c.pod.request(t, f, ref, name)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	// No grace: the checks are over, and a stop must not cost seconds per container.
	testcontainers.CleanupContainer(t, ctr, testcontainers.StopTimeout(0))
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}

	started := time.Now()
	deadline := started.Add(startupTimeout)
	ok := false
	var last string
	for !ok && time.Now().Before(deadline) {
		state, err := ctr.State(ctx)
		if err != nil {
			t.Fatalf("inspecting %s: %v", name, err)
		}
		if c.check == exits {
			if state.Running {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			logs := logsOf(ctx, ctr)
			if state.ExitCode != 0 {
				t.Fatalf("%s exited %d; want 0. Output:\n%s", name, state.ExitCode, logs)
			}
			if !strings.Contains(logs, c.want) {
				t.Fatalf("%s exited 0 but its output lacks %q:\n%s", name, c.want, logs)
			}
			return
		}
		if !state.Running {
			t.Fatalf("%s is %s (exit code %d); want it running. Output:\n%s", name, state.Status, state.ExitCode, logsOf(ctx, ctr))
		}
		switch c.check {
		case ready, answers:
			ok, last = probe(ctx, ctr, c)
		case waits:
			ok = strings.Contains(logsOf(ctx, ctr), c.want)
			last = fmt.Sprintf("no %q in the output yet", c.want)
		case runs:
			// A process that fails at start has exited within a second or two.
			ok = time.Since(started) > 2*time.Second
		}
		if !ok {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("%s: %s check failed after %s: %s. Output:\n%s", name, c.check, startupTimeout, last, logsOf(ctx, ctr))
	}
	checkIdentity(ctx, t, ctr, c)
	state, err := ctr.State(ctx)
	if err != nil || !state.Running {
		t.Fatalf("%s stopped during the checks (exit code %d). Output:\n%s", name, state.ExitCode, logsOf(ctx, ctr))
	}
}

// probe sends the readiness probe's GET through the port Docker publishes on the host's loopback.
func probe(ctx context.Context, ctr testcontainers.Container, c component) (bool, string) {
	get := c.pod.container.ReadinessProbe.HTTPGet
	port, err := ctr.MappedPort(ctx, get.Port.String()+"/tcp")
	if err != nil {
		return false, err.Error()
	}
	url := fmt.Sprintf("http://127.0.0.1:%s%s", port.Port(), get.Path)
	hc := &http.Client{Timeout: time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	got := fmt.Sprintf("GET %s: %d %s", get.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	if c.check == ready {
		return resp.StatusCode >= 200 && resp.StatusCode < 400, got
	}
	return resp.StatusCode == c.status && strings.Contains(string(body), c.want), got
}

// checkIdentity reads the container's first process from the host's /proc (the test runs where dockerd
// does, as the e2e does): its real, effective, saved and filesystem uid and gid must be the pod's, and
// its effective capabilities those the container adds (exactly, when it drops ALL).
func checkIdentity(ctx context.Context, t *testing.T, ctr testcontainers.Container, c component) {
	info, err := ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.State.Pid))
	if err != nil {
		t.Fatalf("reading the process of %s: %v (the smoke test must run on the Docker host, as root)", info.Name, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	uid, gid := c.pod.user()
	if want := strings.Repeat(strconv.FormatInt(uid, 10)+" ", 4); fields["Uid"]+" " != want {
		t.Errorf("%s runs with uids %q; want %d (the pod's runAsUser)", info.Name, fields["Uid"], uid)
	}
	if want := strings.Repeat(strconv.FormatInt(gid, 10)+" ", 4); fields["Gid"]+" " != want {
		t.Errorf("%s runs with gids %q; want %d (the pod's runAsGroup)", info.Name, fields["Gid"], gid)
	}
	mask, exact, err := wantCaps(c.pod.container.SecurityContext)
	if err != nil {
		t.Fatal(err)
	}
	eff, err := strconv.ParseUint(fields["CapEff"], 16, 64)
	if err != nil {
		t.Fatalf("%s: CapEff %q: %v", info.Name, fields["CapEff"], err)
	}
	switch {
	case exact && eff != mask:
		t.Errorf("%s has effective capabilities %#x; want exactly %#x (drops ALL, adds %v)", info.Name, eff, mask, capNames(c.pod.container.SecurityContext))
	case !exact && eff&mask != mask:
		t.Errorf("%s has effective capabilities %#x; want at least %#x (%v)", info.Name, eff, mask, capNames(c.pod.container.SecurityContext))
	}
	t.Logf("%s: pid %d uid %d gid %d CapEff %#x", info.Name, info.State.Pid, uid, gid, eff)
}

// logsOf returns the container's output so far (stdout and stderr), or why it cannot.
func logsOf(ctx context.Context, ctr testcontainers.Container) string {
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return string(b) + "(reading logs: " + err.Error() + ")"
	}
	return string(b)
}
