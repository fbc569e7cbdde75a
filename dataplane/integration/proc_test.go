package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cli/waypointrun"
	"github.com/meshlab/meshlab/cli/ztunnel/dump"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	ztxds "github.com/meshlab/meshlab/dataplane/ztunnel/xds"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
	"github.com/meshlab/meshlab/identity/svidsource"
)

// The test binary is re-executed as a proxy process when roleEnv is set: "ztunnel" reads its spec from
// the JSON file named by argsEnv; "waypoint" runs `meshlab waypoint run` with the arguments in argsEnv
// (separated by \x1f). Either process stops when its stdin closes, so it cannot outlive the test.
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
		err = runWaypoint(ctx, strings.Split(os.Getenv(argsEnv), "\x1f"))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runWaypoint(ctx context.Context, args []string) error {
	env := cliutil.Env{Logger: ui.NewLogger(os.Stderr, 1, false),
		Streams: ui.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, Globals: &cliutil.Globals{}}
	cmd := waypointrun.NewRunCommand(env)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	return cmd.ExecuteContext(ctx)
}

// runZtunnel is `meshlab ztunnel` with a fake API server: the CA (token) for ztunnel's own SVID and its
// pods' SVIDs by impersonation, the workload API over Delta ADS on TLS, the enrolment agent, and the
// admin config dump on the node's loopback. Access-log lines go to stdout.
func runZtunnel(ctx context.Context, specPath string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("reading the ztunnel spec: %w", err)
	}
	var spec ztunnelSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("decoding %s: %w", specPath, err)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
	roots, err := identity.LoadRoots(spec.RootCert)
	if err != nil {
		return err
	}
	bundle := x509bundle.FromX509Authorities(mesh.TrustDomain, roots)
	caConn, err := caclient.Dial(spec.ControlPlane, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, nil))
	if err != nil {
		return err
	}
	defer caConn.Close()
	caClient := caclient.NewClient(caConn, spec.TokenPath)
	ownID, err := ca.WorkloadID(mesh.TrustDomain, mesh.Namespace, mesh.NodeProxyServiceAccount)
	if err != nil {
		return err
	}
	own, err := svidsource.New(ctx, caClient, ownID, svidsource.WithLogf(logf))
	if err != nil {
		return fmt.Errorf("fetching ztunnel's own certificate: %w", err)
	}
	defer own.Close()
	xdsConn, err := caclient.Dial(spec.ControlPlane, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, own))
	if err != nil {
		return err
	}
	defer xdsConn.Close()

	certs := ztunnel.NewCerts(caClient, svidsource.WithLogf(logf))
	defer certs.Close()
	z, err := ztunnel.New(ztunnel.Options{Node: spec.Node, Certs: certs, Bundle: bundle, AccessLog: os.Stdout, Logf: logf})
	if err != nil {
		return err
	}
	defer z.Close() // un-enrol every pod on exit, so that their capture rules go with this process

	kube, err := fakeAPIServer(spec.ObjectsPath)
	if err != nil {
		return err
	}
	var xc *ztxds.Client
	ag, err := agent.New(agent.Options{
		Client: kube, Node: spec.Node, Proxy: z, Logf: logf,
		Netns: &agent.NetnsFinder{Dir: "/var/run/netns", Pattern: spec.NetnsPattern},
		Ready: func(uid string, ip netip.Addr) bool {
			return slices.ContainsFunc(xc.Config().Workloads, func(w ztunnel.Workload) bool { return w.UID == uid && w.IP == ip })
		},
		RemoveRules: func(ns netns.NsHandle) error { return capture.Remove(ns, capture.Config{}) },
	})
	if err != nil {
		return err
	}
	xc, err = ztxds.New(ztxds.Options{
		Conn: xdsConn, Node: spec.Node, Metadata: map[string]string{"NAMESPACE": mesh.Namespace},
		Apply: z.SetConfig, OnApplied: func(ztunnel.Config) { ag.Resync() }, Logf: logf,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) {
		d := dump.Build(dump.Sources{Node: spec.Node, Config: xc.Config(), SVIDs: certs.Certificates(), Roots: roots,
			Connections: z.Connections(), Enrolled: ag.Enrolled(), XDS: xc.Status()})
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	lis, err := net.Listen("tcp", spec.AdminAddress)
	if err != nil {
		return fmt.Errorf("listening for admin: %w", err)
	}
	admin := &http.Server{Handler: mux}
	go admin.Serve(lis)
	defer admin.Close()

	errc := make(chan error, 2)
	go func() { errc <- xc.Run(ctx) }()
	go func() { errc <- ag.Run(ctx) }()
	logf("ztunnel on %s: control plane %s, identity %s", spec.Node, spec.ControlPlane, ownID)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
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
