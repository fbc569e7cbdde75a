package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// istioctl runs the real istioctl (MESHLAB_ISTIOCTL, built by `make istioctl`) against the lab with its
// default flags: no -i, since the control plane is istiod in istio-system as in Istio.
func istioctl(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("MESHLAB_ISTIOCTL")
	if bin == "" {
		t.Fatal("MESHLAB_ISTIOCTL is not set (make e2e builds istioctl and sets it)")
	}
	args = append([]string{"--context", "kind-" + clusterName}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	t.Logf("istioctl %s (%s, err=%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "),
		time.Since(start).Round(time.Millisecond), err, lastLines(out.String(), 30), lastLines(errOut.String(), 10))
	return out.String(), err
}

func mustIstioctl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := istioctl(t, ctx, args...)
	if err != nil {
		t.Fatalf("istioctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// hasRow reports whether some line of table matches every field pattern, in order, separated by spaces.
func hasRow(table string, fields ...string) bool {
	re := regexp.MustCompile(`(?m)^\s*` + strings.Join(fields, `\s+`) + `(\s|$)`)
	return re.MatchString(table)
}

// checkIstioctl is Istio's own tool against the lab, with its defaults, as a learner copying Istio's docs
// would type it: ztunnel-config on the ambient mesh; waypoint apply/list/status, proxy-config on the
// waypoint it made and delete; x precheck; analyze -A with no warning about meshlab's own objects. Where
// meshlab has the same command, its rows must be istioctl's.
func checkIstioctl(t *testing.T, ctx context.Context) {
	t.Run("ztunnel-config", func(t *testing.T) {
		workloads := mustIstioctl(t, ctx, "ztunnel-config", "workload")
		for _, app := range []string{"productpage-v1", "reviews-v2", "sleep"} {
			if !hasRow(workloads, "default", app+`-\S+`, `[0-9.]+`, `\S+`, `\S+`, "HBONE") {
				t.Errorf("istioctl ztunnel-config workload has no HBONE row for %s", app)
			}
		}
		services := mustIstioctl(t, ctx, "ztunnel-config", "service")
		if !hasRow(services, "default", "reviews", `[0-9.]+`, `\S+`, "3/3") {
			t.Errorf("istioctl ztunnel-config service has no reviews row with 3/3 endpoints")
		}
		certs := mustIstioctl(t, ctx, "ztunnel-config", "certificate")
		if !strings.Contains(certs, "spiffe://cluster.local/ns/default/sa/bookinfo-productpage") {
			t.Errorf("istioctl ztunnel-config certificate lacks productpage's identity")
		}
		for _, kind := range []string{"policy", "connection", "all"} {
			mustIstioctl(t, ctx, "ztunnel-config", kind)
		}
		// meshlab's own command prints what istioctl prints, for the tables that do not move by the second.
		for _, kind := range []string{"workload", "service"} {
			want := mustIstioctl(t, ctx, "ztunnel-config", kind)
			got, err := meshlab(t, ctx, "ztunnel-config", kind)
			if err != nil {
				t.Fatalf("meshlab ztunnel-config %s: %v", kind, err)
			}
			if got != want {
				t.Errorf("meshlab ztunnel-config %s differs from istioctl's:\nmeshlab:\n%s\nistioctl:\n%s", kind, got, want)
			}
		}
	})

	t.Run("waypoint and proxy-config", func(t *testing.T) {
		// --enroll-namespace labels default istio.io/use-waypoint=waypoint: its services are then bound
		// to the waypoint, which gets their config (a waypoint serves only what is bound to it).
		mustIstioctl(t, ctx, "waypoint", "apply", "-n", "default", "--enroll-namespace", "--wait")
		t.Cleanup(func() {
			istioctl(t, context.Background(), "waypoint", "delete", "waypoint", "-n", "default")
			kc(t, context.Background(), nil, "label", "namespace", "default", "istio.io/use-waypoint-")
		})
		if list := mustIstioctl(t, ctx, "waypoint", "list", "-n", "default"); !regexp.MustCompile(`(?m)^waypoint\s.*\sTrue\s*$`).MatchString(list) {
			t.Errorf("istioctl waypoint list shows no programmed waypoint")
		}
		mustIstioctl(t, ctx, "waypoint", "status", "-n", "default")
		if err := waitRolledOut(t, ctx, "default", "waypoint"); err != nil {
			t.Fatal(err)
		}
		target := []string{"deploy/waypoint", "-n", "default"}
		pc := func(kind string) string {
			return mustIstioctl(t, ctx, append([]string{"proxy-config", kind}, target...)...)
		}
		// istioctl's listener table: the HBONE listener (connect_terminate) on 15008, and the internal
		// main_internal chains, one per service VIP, routing to the waypoint's inbound-vip routes.
		l := pc("listener")
		if !regexp.MustCompile(`(?m)^0\.0\.0\.0\s+15008\s+ALL\s+Inline Route`).MatchString(l) ||
			!strings.Contains(l, "Route: inbound-vip|9080|http|reviews.default.svc.cluster.local") {
			t.Errorf("istioctl proxy-config listener lacks the HBONE listener on 15008 or reviews' chain")
		}
		if c := pc("cluster"); !strings.Contains(c, "reviews.default.svc.cluster.local") {
			t.Errorf("istioctl proxy-config cluster lacks reviews")
		}
		pc("route")
		pc("secret")
		pc("bootstrap")
		pc("all")
		endpoints := pc("endpoint")
		if !regexp.MustCompile(`(?m)^\S+\s+HEALTHY\s+\S+\s+inbound-vip\|9080\|http\|reviews\.default\.svc\.cluster\.local\s*$`).MatchString(endpoints) {
			t.Errorf("istioctl proxy-config endpoint shows no healthy reviews endpoint")
		}
		got, err := meshlab(t, ctx, "proxy-config", "endpoints", "deploy/waypoint.default")
		if err != nil {
			t.Fatalf("meshlab proxy-config endpoints: %v", err)
		}
		if got != endpoints {
			t.Errorf("meshlab proxy-config endpoints differs from istioctl's:\nmeshlab:\n%s\nistioctl:\n%s", got, endpoints)
		}
		if out := mustIstioctl(t, ctx, "waypoint", "delete", "waypoint", "-n", "default"); !strings.Contains(out, "deleted") {
			t.Errorf("istioctl waypoint delete said %q", out)
		}
	})

	t.Run("proxy-status", func(t *testing.T) {
		// istioctl mints a token for istio-system/default through the API server, port-forwards to an istiod
		// pod's 15012 and asks for istio.io/debug/syncz over TLS.
		out := mustIstioctl(t, ctx, "proxy-status")
		if !regexp.MustCompile(`(?m)^ztunnel-\S+\.istio-system\s`).MatchString(out) {
			t.Errorf("istioctl proxy-status lists no ztunnel")
		}
		if !strings.Contains(out, "istiod-") {
			t.Errorf("istioctl proxy-status names no istiod instance")
		}
	})

	t.Run("x precheck", func(t *testing.T) { mustIstioctl(t, ctx, "x", "precheck") })

	t.Run("analyze -A says nothing about meshlab's own objects", func(t *testing.T) {
		out, _ := istioctl(t, ctx, "analyze", "-A") // exit 79 when it has warnings; the lines say which
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "istio-system") || strings.Contains(line, "kube-system") {
				t.Errorf("istioctl analyze -A: %s", line)
			}
		}
	})
}

// waitRolledOut waits for a Deployment to be available.
func waitRolledOut(t *testing.T, ctx context.Context, namespace, name string) error {
	t.Helper()
	_, err := kc(t, ctx, nil, "-n", namespace, "rollout", "status", "deploy/"+name, "--timeout=3m")
	return err
}
