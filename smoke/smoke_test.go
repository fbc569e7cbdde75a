package smoke

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/cluster/cni"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/waypoints"
	"github.com/meshlab/meshlab/image"
	"github.com/meshlab/meshlab/manifests"
)

// startupTimeout bounds each component's check: a healthy one passes in about a second.
const startupTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	// The Ryuk reaper is an image testcontainers pulls; nothing may be pulled here, and every container
	// is removed by the test's own cleanup.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Exit(m.Run())
}

// check is what a component can show without a cluster.
type check int

const (
	// ready: the readiness probe answers 2xx, as the kubelet wants it to.
	ready check = iota
	// answers: the probe's port answers with status and a body containing want: the process serves, and
	// says it waits for what only a cluster gives (the API server).
	answers
	// waits: the process has no port open before it holds a certificate from the control plane's CA,
	// which needs a cluster; it must stay up and log want, the step that waits.
	waits
	// runs: no probe; the process must stay up.
	runs
	// exits: an init container; it must exit 0 (and print want).
	exits
)

func (c check) String() string {
	return [...]string{"ready", "answers", "waits", "runs", "exits"}[c]
}

// component is one container meshlab deploys and what the smoke test checks of it.
type component struct {
	name   string
	pod    podContainer
	check  check
	status int    // answers: the HTTP status expected
	want   string // answers: in the body; waits and exits: in the output
	why    string // why no more than this check (all but ready)
}

// components are every container meshlab runs, taken from the objects it deploys, with image ref.
func components(ref string) ([]component, error) {
	var out []component
	add := func(name string, objs []client.Object, container string, c component) error {
		pc, err := findContainer(objs, container)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		c.name, c.pod = name, pc
		out = append(out, c)
		return nil
	}

	if err := add("controlplane", manifests.ControlPlane(ref), "discovery", component{
		check: answers, status: 503, want: "waiting for informers",
		why: "/ready turns 200 only once the informers have listed the Kubernetes API",
	}); err != nil {
		return nil, err
	}
	if err := add("ztunnel", manifests.Ztunnel(ref), "istio-proxy", component{
		check: waits, want: "fetching ztunnel's own certificate",
		why: "ztunnel opens its ports after the control plane's CA signed its certificate, and the CA needs the Kubernetes API",
	}); err != nil {
		return nil, err
	}

	for _, o := range manifests.Bookinfo(ref, "default") {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		c := component{check: ready}
		if d.Spec.Template.Spec.Containers[0].ReadinessProbe == nil {
			c = component{check: runs, why: "the sleep client has no probe and no port"}
		}
		if err := add(d.Name, []client.Object{d}, d.Spec.Template.Spec.Containers[0].Name, c); err != nil {
			return nil, err
		}
	}
	echo := manifests.Echo(manifests.EchoOptions{Name: "echo", Namespace: "default", Version: "v1", Port: 8080, Replicas: 1, Image: ref})
	if err := add("echo", echo, "echo", component{check: ready}); err != nil {
		return nil, err
	}

	opts := waypoints.Options{Image: ref}
	waypoint := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "waypoint", Namespace: "default"},
		Spec: gwv1.GatewaySpec{GatewayClassName: waypoints.GatewayClassName, Listeners: []gwv1.Listener{
			{Name: "mesh", Port: waypoints.HBONEPort, Protocol: "HBONE"},
		}},
	}
	_, wd, _ := waypoints.Objects(waypoint, opts)
	if err := add("waypoint", []client.Object{wd}, waypoints.ContainerName, component{
		check: waits, want: "fetching the waypoint certificate",
		why: "the waypoint opens its ports after the control plane's CA signed its certificate",
	}); err != nil {
		return nil, err
	}
	ingress := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo-gateway", Namespace: "default"},
		Spec: gwv1.GatewaySpec{GatewayClassName: waypoints.IngressClassName, Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
		}},
	}
	_, gd, _ := waypoints.IngressObjects(ingress, opts)
	if err := add("ingress-gateway", []client.Object{gd}, waypoints.ContainerName, component{
		check: waits, want: "fetching the gateway certificate",
		why: "the gateway opens its ports after the control plane's CA signed its certificate",
	}); err != nil {
		return nil, err
	}

	injected, err := injectedPod(ref)
	if err != nil {
		return nil, err
	}
	if err := add("sidecar-init", []client.Object{injected}, "istio-init", component{
		check: exits, want: "meshlab-proxy-nat",
		why: "an init container: it installs the capture rules in its network namespace and exits",
	}); err != nil {
		return nil, err
	}
	if err := add("sidecar", []client.Object{injected}, "istio-proxy", component{
		check: waits, want: "fetching the sidecar certificate",
		why: "the sidecar opens its ports after the control plane's CA signed its certificate",
	}); err != nil {
		return nil, err
	}

	if err := add("cni-agent", cni.Objects(ref), "cni-agent", component{
		check: waits, want: "cni-agent: ",
		why: "the agent has no port; it reads its node from the Kubernetes API and retries while it cannot",
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// injectedPod is a bookinfo-like pod as the injection webhook returns it, with the default template.
func injectedPod(ref string) (*corev1.Pod, error) {
	tmpl, err := inject.ParseTemplate(inject.DefaultTemplate)
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default", Labels: map[string]string{"app": "app"}},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{
			Name: "app", Image: ref, Args: []string{"sleep"},
		}}},
	}
	return tmpl.Inject(pod, "default", inject.Values{ProxyImage: ref})
}

// findContainer returns the container (or init container) named name of the one pod template in objs.
func findContainer(objs []client.Object, name string) (podContainer, error) {
	for _, o := range objs {
		var spec *corev1.PodSpec
		ns := o.GetNamespace()
		switch w := o.(type) {
		case *appsv1.Deployment:
			spec = &w.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &w.Spec.Template.Spec
		case *corev1.Pod:
			spec = &w.Spec
		default:
			continue
		}
		for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
			if c.Name == name {
				return podContainer{namespace: ns, pod: *spec, container: c}, nil
			}
		}
	}
	return podContainer{}, fmt.Errorf("no container %q in the objects", name)
}

// TestImage packs MESHLAB_BIN into meshlab's image, loads it into Docker and checks every component.
func TestImage(t *testing.T) {
	if os.Getenv("MESHLAB_SMOKE") != "1" {
		t.Skip("set MESHLAB_SMOKE=1 and MESHLAB_BIN (make smoke) to run the image smoke test in Docker")
	}
	bin := os.Getenv("MESHLAB_BIN")
	if bin == "" {
		t.Fatal("MESHLAB_SMOKE=1 needs MESHLAB_BIN, the static meshlab binary whose image is tested")
	}
	ctx := context.Background()
	start := time.Now()
	ref := loadImage(ctx, t, bin)
	t.Logf("image %s packed and loaded in %s", ref, time.Since(start).Round(time.Millisecond))

	f := &fixtures{dir: t.TempDir(), rootPEM: selfSignedPEM(t)}
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	comps, err := components(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comps {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.why != "" {
				t.Logf("checks %s only: %s", c.check, c.why)
			}
			run(ctx, t, f, ref, c)
		})
	}
}

// loadImage packs bin as `meshlab up` does (image.Build, image.WriteTarball), loads the tarball into
// Docker and returns the image's reference. It fails if Docker does not have the image afterwards, so
// that testcontainers never tries to pull it.
func loadImage(ctx context.Context, t *testing.T, bin string) string {
	img, tag, err := image.Build(bin)
	if err != nil {
		t.Fatalf("packing %s: %v", bin, err)
	}
	tarPath := filepath.Join(t.TempDir(), tag.TagStr()+".tar")
	if err := image.WriteTarball(tarPath, img, tag); err != nil {
		t.Fatal(err)
	}
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("Docker: %v", err)
	}
	defer dc.Close()
	tarball, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer tarball.Close()
	res, err := dc.ImageLoad(ctx, tarball)
	if err != nil {
		t.Fatalf("docker load %s: %v", tarPath, err)
	}
	defer res.Close()
	out, err := io.ReadAll(res)
	if err != nil {
		t.Fatalf("docker load %s: %v", tarPath, err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			break
		}
		if msg.Error != "" {
			t.Fatalf("docker load %s: %s", tarPath, msg.Error)
		}
	}
	if _, err := dc.ImageInspect(ctx, tag.String()); err != nil {
		t.Fatalf("Docker has no %s after loading %s: %v", tag, tarPath, err)
	}
	return tag.String()
}

// selfSignedPEM is a CA certificate for the files that must parse: the API server's ca.crt and the
// mesh root. No server presents a certificate it signed.
func selfSignedPEM(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"meshlab smoke"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
