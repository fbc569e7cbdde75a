package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	gwconformance "sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// supportedFeatures are the features meshlab claims: the MESH-HTTP profile's core (Mesh, HTTPRoute),
// its extended features but MeshClusterIPMatching (Istio does not claim it either: MeshFrontendHostname
// is reported unsupported, not skipped), and the HTTPRoute features the mesh tests also need.
var supportedFeatures = []features.FeatureName{
	features.SupportMesh,
	features.SupportHTTPRoute,
	// Not features.SupportMeshConsumerRoute: its one test is skipped (skippedTests), and the report must not
	// claim it.
	features.SupportMeshHTTPRouteRewritePath,
	features.SupportMeshHTTPRouteSchemeRedirect,
	features.SupportMeshHTTPRouteRedirectPort,
	features.SupportMeshHTTPRouteRedirectPath,
	features.SupportMeshHTTPRouteBackendRequestHeaderModification,
	features.SupportMeshHTTPRouteQueryParamMatching,
	features.SupportMeshHTTPRouteNamedRouteRule,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
}

// skippedTests are the tests of the supported features that do not pass on meshlab, each with its
// reason; docs/conformance/README.md lists them too. Never skip a test without a line here.
var skippedTests = map[string]string{
	// The route lives in the consumer's namespace (gateway-conformance-mesh-consumer) and must change only
	// that namespace's requests. In ambient the route is executed by the Service's waypoint, which does not
	// scope routes by the client's namespace: meshlab's waypoint applies it to every client, so the
	// producer-namespace case gets the header too. Consumer routes need the client-side proxy (a sidecar);
	// Istio's published report that passes this test is its default (sidecar) mode.
	"MeshConsumerRoute": "ambient waypoints apply consumer-namespace routes to every client (consumer routes need a sidecar)",
}

// meshNamespaces are the suite's mesh namespaces (conformance/mesh/manifests.yaml); each gets a waypoint.
var meshNamespaces = []string{suite.MeshNamespace, suite.MeshConsumerNamespace}

// waypointName is the waypoint each mesh namespace gets and is enrolled in (istio.io/use-waypoint).
const waypointName = "waypoint"

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func TestMeshConformance(t *testing.T) {
	if os.Getenv("MESHLAB_CONFORMANCE") != "1" {
		t.Skip("set MESHLAB_CONFORMANCE=1 (and MESHLAB_BIN) to run the Gateway API mesh conformance suite on kind; `make conformance` does")
	}
	bin := os.Getenv("MESHLAB_BIN")
	if bin == "" {
		t.Fatal("MESHLAB_BIN must name the built meshlab binary")
	}
	cluster := env("MESHLAB_CONFORMANCE_CLUSTER", "meshlab-conf")
	report := os.Getenv("MESHLAB_CONFORMANCE_REPORT")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	run := func(name string, args ...string) string {
		t.Helper()
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, name, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		t.Logf("$ %s %s (%s)", name, strings.Join(args, " "), time.Since(t0).Round(100*time.Millisecond))
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	existed := len(kindNodes(t, cluster)) > 0
	if !existed && os.Getenv("MESHLAB_CONFORMANCE_KEEP") != "1" {
		t.Cleanup(func() {
			out, err := exec.Command(bin, "down", "--name", cluster).CombinedOutput()
			t.Logf("$ %s down --name %s: %v\n%s", bin, cluster, err, out)
		})
	}
	run(bin, "up", "--offline", "--recreate-broken", "--name", cluster) // the suite's own cluster
	t.Logf("lab %q ready after %s", cluster, time.Since(start).Round(time.Second))

	// The echo stand-in, under every image name the suite's mesh manifests use.
	refs, err := echoImages(gwconformance.Manifests)
	if err != nil || len(refs) == 0 {
		t.Fatalf("finding the suite's echo images: %v (found %v)", err, refs)
	}
	nodes := kindNodes(t, cluster)
	for i, ref := range refs {
		tar := filepath.Join(t.TempDir(), fmt.Sprintf("echo-%d.tar", i))
		run(bin, "image", "build", "--echo-as", ref, "-o", tar)
		for _, n := range nodes {
			importImage(t, ctx, n, tar)
		}
	}

	// A waypoint per mesh namespace, created before the suite applies its manifests (the suite updates
	// the namespaces and adds NamespaceLabels; the waypoint stays).
	for _, ns := range meshNamespaces {
		createNamespace(t, ctx, cluster, ns)
		run(bin, "waypoint", "apply", "--cluster", cluster, "-n", ns, "--name", waypointName, "--enroll-namespace", "--wait")
	}

	kubeconfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{CurrentContext: "kind-" + cluster})
	cfg, err := kubeconfig.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	log.SetLogger(zap.New(zap.WriteTo(os.Stdout), zap.UseDevMode(true)))
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, install := range []func(*runtime.Scheme) error{v1alpha3.Install, v1alpha2.Install, gatewayv1.Install, apiextensionsv1.AddToScheme} {
		if err := install(c.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := clientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	var skip []string
	for name, why := range skippedTests {
		t.Logf("skipping %s: %s", name, why)
		skip = append(skip, name)
	}
	slices.Sort(skip)
	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			CleanupBaseResources: true,
			CleanupTestResources: true,
			SupportedFeatures:    supportedFeatures,
			ConformanceProfiles:  []suite.ConformanceProfileName{suite.MeshHTTPConformanceProfileName},
			SkipTests:            skip,
			Mode:                 "ambient",
			ReportOutputPath:     report,
			NamespaceLabels: map[string]string{
				"istio.io/dataplane-mode": "ambient",
				"istio.io/use-waypoint":   waypointName,
			},
			Implementation: confv1.Implementation{
				Organization: "meshlab",
				Project:      "meshlab",
				URL:          "https://github.com/meshlab/meshlab",
				Version:      strings.TrimSpace(run(bin, "version")),
				Contact:      []string{"https://github.com/meshlab/meshlab/issues"},
			},
			TimeoutConfig: timeouts(),
		},
		Client:     c,
		Clientset:  cs,
		RestConfig: cfg,
		ManifestFS: []fs.FS{&gwconformance.Manifests},
	}
	suiteStart := time.Now()
	t.Cleanup(func() {
		t.Logf("suite ran in %s; whole test (lab up, images, suite) %s", time.Since(suiteStart).Round(time.Second), time.Since(start).Round(time.Second))
	})
	gwconformance.RunConformanceWithOptions(t, opts)
}

// echoImages returns every image the suite's mesh manifests name (the base mesh manifests and the mesh
// tests' own), in order.
func echoImages(fsys fs.FS) ([]string, error) {
	re := regexp.MustCompile(`(?m)^\s*image:\s*(\S+)\s*$`)
	var refs []string
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") || !(strings.HasPrefix(path, "mesh/") || strings.HasPrefix(path, "tests/mesh/")) {
			return nil
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(refs, m[1]) {
				refs = append(refs, m[1])
			}
		}
		return nil
	})
	return refs, err
}

// kindNodes lists the node containers of the kind cluster (none if it does not exist).
func kindNodes(t *testing.T, cluster string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster="+cluster, "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// importImage imports an image tarball into a kind node's containerd, as `kind load image-archive` does.
func importImage(t *testing.T, ctx context.Context, node, tar string) {
	t.Helper()
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", node, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs", "-")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("importing %s into %s: %v\n%s", tar, node, err, out)
	}
}

// createNamespace creates ns unless it exists.
func createNamespace(t *testing.T, ctx context.Context, cluster, ns string) {
	t.Helper()
	k := func(args ...string) ([]byte, error) {
		return exec.CommandContext(ctx, "kubectl", append([]string{"--context", "kind-" + cluster}, args...)...).CombinedOutput()
	}
	if _, err := k("get", "namespace", ns); err == nil {
		return
	}
	if out, err := k("create", "namespace", ns); err != nil {
		t.Fatalf("creating namespace %s: %v\n%s", ns, err, out)
	}
}

// timeouts are the suite's defaults; the mesh tests' requests go through ztunnel and a waypoint, which
// converge within the defaults on a 2-core machine.
func timeouts() config.TimeoutConfig {
	return config.DefaultTimeoutConfig()
}

// TestEchoImages: the images to stand in for are read from the suite's own manifests.
func TestEchoImages(t *testing.T) {
	refs, err := echoImages(gwconformance.Manifests)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) == 0 {
		t.Fatal("no image in the suite's mesh manifests")
	}
	for _, r := range refs {
		if !strings.Contains(r, "echo") {
			t.Errorf("image %q is not an echo image; the stand-in would not fit it", r)
		}
	}
	t.Logf("echo images: %v", refs)
}
