package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/dataplane/waypoint"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
)

// The test binary is re-executed as a proxy process when roleEnv is set: "ztunnel" and "waypoint" read
// their spec from the JSON file named by argsEnv and run the same assembly as `meshlab ztunnel` and
// `meshlab waypoint run`. Either process stops when its stdin closes, so it cannot outlive the test.
const (
	roleEnv = "MESHLAB_INTEGRATION_ROLE"
	argsEnv = "MESHLAB_INTEGRATION_ARGS"
)

// ztunnelSpec is what one ztunnel process needs: the things the DaemonSet gives `meshlab ztunnel`
// (node name, token, root certificate, control plane address, netns directory), and, in place of the
// API server, the YAML of the pods and namespaces its enrolment agent watches.
type ztunnelSpec struct {
	Node         string `json:"node"`
	ControlPlane string `json:"controlPlane"`
	TokenPath    string `json:"tokenPath"`
	RootCert     string `json:"rootCert"`
	NetnsPattern string `json:"netnsPattern"`
	ObjectsPath  string `json:"objectsPath"`
	AdminAddress string `json:"adminAddress"`
}

func TestMain(m *testing.M) {
	role := os.Getenv(roleEnv)
	if role == "" {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var err error
	switch role {
	case "ztunnel":
		err = runZtunnel(ctx, os.Getenv(argsEnv))
	case "waypoint":
		err = runWaypoint(ctx, os.Getenv(argsEnv))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// waypointSpec is what the waypoint Deployment gives `meshlab waypoint run`.
type waypointSpec struct {
	Namespace    string `json:"namespace"`
	Name         string `json:"name"`
	IP           string `json:"ip"`
	ControlPlane string `json:"controlPlane"`
	TokenPath    string `json:"tokenPath"`
	RootCert     string `json:"rootCert"`
}

// runWaypoint is `meshlab waypoint run`: proxyboot for the certificate and xDS credentials, then
// waypoint.Run with the default listeners. Access-log lines go to stdout.
func runWaypoint(ctx context.Context, specPath string) error {
	var spec waypointSpec
	if err := readSpec(specPath, &spec); err != nil {
		return err
	}
	logf := stderrLogf
	certs := proxyboot.CertSource{CAAddress: spec.ControlPlane, TokenPath: spec.TokenPath, RootCert: spec.RootCert}
	id, err := certs.Boot(ctx, "waypoint", spec.Namespace, spec.Name, false, logf)
	if err != nil {
		return err
	}
	defer id.Close()
	return waypoint.Run(ctx, waypoint.Options{RouterOptions: l7xds.RouterOptions{
		XDSAddress: spec.ControlPlane, XDSDialOptions: id.XDSDial,
		Namespace: spec.Namespace, Name: spec.Name, IPs: []string{spec.IP},
		SVID: id.SVID, Bundle: id.Bundle,
		AdminAddress: admin.DefaultAddress, HealthAddress: admin.DefaultHealthAddress,
		AccessLog: os.Stdout, Logf: logf,
	}, HBONEAddress: ":15008"})
}

func readSpec(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

func stderrLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

// runZtunnel is `meshlab ztunnel` (dataplane/ztunnel/app) with a fake API server and the test's network
// namespaces; it un-enrols every pod on exit, so that their capture rules go with this process. Access-log
// lines go to stdout.
func runZtunnel(ctx context.Context, specPath string) error {
	var spec ztunnelSpec
	if err := readSpec(specPath, &spec); err != nil {
		return err
	}
	kube, err := fakeAPIServer(spec.ObjectsPath)
	if err != nil {
		return err
	}
	return app.Run(ctx, app.Options{
		Node: spec.Node, Namespace: mesh.Namespace, ServiceAccount: mesh.NodeProxyServiceAccount,
		XDSAddress: spec.ControlPlane, CAAddress: spec.ControlPlane, TokenPath: spec.TokenPath, RootCert: spec.RootCert,
		Kube: kube, Netns: &agent.NetnsFinder{Dir: "/var/run/netns", Pattern: spec.NetnsPattern},
		AdminAddress: spec.AdminAddress, CleanupOnExit: true, AccessLog: os.Stdout, Logf: stderrLogf,
	})
}

// fakeAPIServer serves the pods and namespaces of the YAML file, as the agent's informers read them.
func fakeAPIServer(path string) (*fake.Clientset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading objects: %w", err)
	}
	objs, _, err := ingest.Decode(path, data)
	if err != nil {
		return nil, err
	}
	var kube []runtime.Object
	for _, o := range objs {
		switch o.(type) {
		case *corev1.Pod, *corev1.Namespace:
			kube = append(kube, o)
		}
	}
	if len(kube) == 0 {
		return nil, errors.New("no pods or namespaces in " + path)
	}
	return fake.NewClientset(kube...), nil
}
