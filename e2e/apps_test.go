package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/meshlab/meshlab/image"
)

// appsNamespace is where checkYourOwnApps deploys; the lab is torn down at the end, so it stays.
const appsNamespace = "apps-e2e"

// checkYourOwnApps walks README's "Your own apps": an image built here is loaded with `meshlab load
// docker-image` (an image Docker lacks exits 2), the echo app in two versions and a pod of the loaded
// image are deployed with `meshlab up --with DIR` on the running lab, and sleep reaches both versions of
// echo, which answer with their pod, namespace, version and the request's headers.
func checkYourOwnApps(t *testing.T, ctx context.Context) {
	kc := kubectl(t)
	if _, err := meshlab(t, ctx, "load", "docker-image", "no/such:image"); exitCode(err) != 2 {
		t.Errorf("load docker-image no/such:image: %v, want exit 2", err)
	}

	// An image of our own, built here from the binary under test (nothing is pulled), known only to Docker.
	ref := fmt.Sprintf("meshlab.local/e2e-app:%d", time.Now().Unix())
	img, _, err := image.Build(meshlabBin)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "app.tar")
	if err := image.WriteTarball(tarball, img, tag); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "docker", "load", "-i", tarball).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	if out, err := meshlab(t, ctx, "load", "docker-image", ref); err != nil {
		t.Fatalf("load docker-image %s: %v\n%s", ref, err, out)
	}

	dir := t.TempDir()
	write := func(file, text string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("00-namespace.yaml", fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    istio.io/dataplane-mode: ambient\n", appsNamespace))
	for i, v := range []string{"v1", "v2"} {
		out, err := meshlab(t, ctx, "echo", "manifest", "--namespace", appsNamespace, "--version", v, fmt.Sprintf("--service=%v", i == 0))
		if err != nil {
			t.Fatalf("echo manifest --version %s: %v", v, err)
		}
		write(fmt.Sprintf("10-echo-%s.yaml", v), out)
	}
	// The loaded image, which no registry has: imagePullPolicy Never proves it is in the node.
	write("20-app.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: own-image
  namespace: %s
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    args: [sleep]
`, appsNamespace, ref))

	start := time.Now()
	out, err := meshlab(t, ctx, "up", "--offline", "--with", dir)
	if err != nil {
		t.Fatalf("up --with %s: %v\n%s", dir, err, out)
	}
	t.Logf("up --with on the running lab took %s", time.Since(start).Round(time.Second))
	// Converges: the same manifests again are no error.
	if out, err := meshlab(t, ctx, "up", "--offline", "--with", dir); err != nil {
		t.Fatalf("second up --with %s: %v\n%s", dir, err, out)
	}

	statusOut, _ := meshlab(t, ctx, "status", "-o", "json")
	var st struct {
		Components []struct{ Kind, Namespace, Name string }
	}
	if err := json.Unmarshal([]byte(statusOut), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, statusOut)
	}
	for _, want := range []string{"Deployment " + appsNamespace + "/echo-v1", "Deployment " + appsNamespace + "/echo-v2", "Pod " + appsNamespace + "/own-image"} {
		found := false
		for _, c := range st.Components {
			found = found || c.Kind+" "+c.Namespace+"/"+c.Name == want
		}
		if !found {
			t.Errorf("status does not list %s among its components:\n%s", want, statusOut)
		}
	}

	seen := map[string]bool{}
	url := fmt.Sprintf("http://echo.%s:8080/hello", appsNamespace)
	for i := 0; i < 40 && len(seen) < 2; i++ {
		body, err := exec.CommandContext(ctx, kc, "--context", "kind-"+clusterName, "exec", "deploy/sleep", "--",
			"meshlab", "curl", "-sS", "-H", "X-Team: apps", url).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s from sleep: %v\n%s", url, err, body)
		}
		b := string(body)
		version := field(b, "ServiceVersion")
		for k, want := range map[string]string{
			"Namespace": appsNamespace,
			"Hostname":  "echo-" + version + "-",
			"URL":       "/hello",
		} {
			if got := field(b, k); !strings.HasPrefix(got, want) {
				t.Fatalf("%s = %q, want %q...\n%s", k, got, want, b)
			}
		}
		if !strings.Contains(b, "RequestHeader=X-Team:apps\n") {
			t.Fatalf("echo did not see the request header X-Team: apps:\n%s", b)
		}
		seen[version] = true
	}
	if !seen["v1"] || !seen["v2"] {
		t.Errorf("sleep reached versions %v of echo, want v1 and v2", seen)
	}
}

func field(body, key string) string {
	m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
