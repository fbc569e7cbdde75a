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
		for _, kind := range []string{"policy", "connections", "all"} {
			mustIstioctl(t, ctx, "ztunnel-config", kind)
		}
		// meshlab's own command prints what istioctl prints, every table.
		for _, kind := range []string{"workload", "service", "policy", "certificate", "connections", "all"} {
			sameAsIstioctl(t, ctx, []string{"ztunnel-config", kind}, []string{"ztunnel-config", kind})
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
		if status := mustIstioctl(t, ctx, "waypoint", "status", "-n", "default"); !hasRow(status, "waypoint", "True", "Programmed") {
			t.Errorf("istioctl waypoint status shows no programmed waypoint")
		}
		for _, c := range []string{"list", "status"} {
			sameAsIstioctl(t, ctx, []string{"waypoint", c, "-n", "default"}, []string{"waypoint", c, "-n", "default"})
		}
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
		if r := pc("route"); !strings.Contains(r, "inbound-vip|9080|http|reviews.default.svc.cluster.local") {
			t.Errorf("istioctl proxy-config route lacks reviews' route config")
		}
		if certs := pc("secret"); !strings.Contains(certs, "ROOTCA") || !strings.Contains(certs, "default") {
			t.Errorf("istioctl proxy-config secret shows no default certificate and ROOTCA")
		}
		if b := pc("bootstrap"); !strings.Contains(b, `"id": "router~`) {
			t.Errorf("istioctl proxy-config bootstrap shows no router node ID")
		}
		pc("all")
		if endpoints := pc("endpoint"); !regexp.MustCompile(`(?m)^\S+\s+HEALTHY\s+\S+\s+inbound-vip\|9080\|http\|reviews\.default\.svc\.cluster\.local\s*$`).MatchString(endpoints) {
			t.Errorf("istioctl proxy-config endpoint shows no healthy reviews endpoint")
		}
		// meshlab's proxy-config on the same waypoint prints the same bytes, table by table (and the
		// waypoint view, which istioctl gives with --waypoint).
		compareProxyConfig(t, ctx, target, "deploy/waypoint.default")
		sameAsIstioctl(t, ctx, append([]string{"proxy-config", "listener", "--waypoint"}, target...),
			[]string{"proxy-config", "listener", "--waypoint", "deploy/waypoint.default"})
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
		// meshlab's own table, read a moment later, has the same rows (it has no ages by default either).
		got, err := meshlab(t, ctx, "proxy-status")
		if err != nil {
			t.Fatalf("meshlab proxy-status: %v", err)
		}
		if want := mustIstioctl(t, ctx, "proxy-status"); got != want {
			t.Errorf("meshlab proxy-status differs from istioctl's:\nmeshlab:\n%s\nistioctl:\n%s", got, want)
		}
	})

	t.Run("version", func(t *testing.T) {
		// istioctl reads the control plane's identity from its debug xDS answer: meshlab's, named so.
		out := mustIstioctl(t, ctx, "version")
		if !regexp.MustCompile(`(?m)^control plane version: meshlab-\S+$`).MatchString(out) {
			t.Errorf("istioctl version does not say the control plane is meshlab's")
		}
		if !regexp.MustCompile(`(?m)^data plane version: .*\(\d+ proxies\)`).MatchString(out) {
			t.Errorf("istioctl version counts no data plane proxies")
		}
		mine, err := meshlab(t, ctx, "version")
		if err != nil || !strings.Contains(mine, "control plane version: meshlab-") {
			t.Errorf("meshlab version does not name the lab's control plane: %v\n%s", err, mine)
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

// checkIstioctlSidecar runs istioctl proxy-config on a sidecar pod with its defaults, and meshlab's
// proxy-config on the same pod: the tables must be the same, row for row.
func checkIstioctlSidecar(t *testing.T, ctx context.Context, namespace, pod string) {
	compareProxyConfig(t, ctx, []string{pod, "-n", namespace}, pod+"."+namespace)
	// The sidecar's own listeners and the HBONE path to reviews, as istioctl reads them.
	listeners := mustIstioctl(t, ctx, "proxy-config", "listener", pod, "-n", namespace)
	for _, port := range []string{"15001", "15006"} {
		if !hasRow(listeners, `0\.0\.0\.0`, port) {
			t.Errorf("istioctl proxy-config listener shows no %s listener", port)
		}
	}
	clusters := mustIstioctl(t, ctx, "proxy-config", "cluster", pod, "-n", namespace, "--fqdn", "reviews")
	if !hasRow(clusters, `reviews\.`+namespace+`\.svc\.cluster\.local`, "9080", "-", "outbound", "EDS") {
		t.Errorf("istioctl proxy-config cluster --fqdn reviews shows no outbound EDS cluster")
	}
	if certs := mustIstioctl(t, ctx, "proxy-config", "secret", pod, "-n", namespace); !strings.Contains(certs, "ROOTCA") || !strings.Contains(certs, "default") {
		t.Errorf("istioctl proxy-config secret shows no default certificate and ROOTCA")
	}
}

// compareProxyConfig runs every proxy-config table of istioctl on a proxy (istioTarget, in istioctl's
// form) and meshlab's on the same proxy (meshlabTarget): each must print the same bytes.
func compareProxyConfig(t *testing.T, ctx context.Context, istioTarget []string, meshlabTarget string) {
	t.Helper()
	for _, kind := range []string{"listener", "cluster", "route", "endpoint", "secret", "bootstrap", "all"} {
		sameAsIstioctl(t, ctx, append([]string{"proxy-config", kind}, istioTarget...), []string{"proxy-config", kind, meshlabTarget})
	}
}

// sameAsIstioctl runs istioctl and meshlab's equivalent command and fails unless they print the same bytes.
// Tables that move by the second (connections, endpoints being rolled) get two more reads, a second
// apart, before they count as different.
func sameAsIstioctl(t *testing.T, ctx context.Context, istioArgs, meshlabArgs []string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		want := mustIstioctl(t, ctx, istioArgs...)
		got, err := meshlab(t, ctx, meshlabArgs...)
		if err != nil {
			t.Errorf("meshlab %s: %v", strings.Join(meshlabArgs, " "), err)
			return
		}
		if got == want {
			return
		}
		if attempt == 3 {
			t.Errorf("meshlab %s differs from istioctl %s:\nmeshlab:\n%s\nistioctl:\n%s",
				strings.Join(meshlabArgs, " "), strings.Join(istioArgs, " "), got, want)
			return
		}
		time.Sleep(time.Second)
	}
}
