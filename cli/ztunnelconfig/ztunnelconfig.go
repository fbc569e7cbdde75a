// Package ztunnelconfig is `meshlab ztunnel-config`: istioctl's `ztunnel-config` tables (workloads, services,
// policies, certificates, connections, all) printed from a ztunnel config dump in ztunnel's own shape
// (dataplane/ztunnel/configdump), read from a file (--file, as istioctl's) or fetched from a ztunnel pod's
// loopback admin port (15000) through the API server's port-forward. Rows, columns, spacing and order are
// istioctl's, so the two print the same for the same dump.
package ztunnelconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
	"github.com/meshlab/meshlab/manifests"
)

type flagpole struct {
	file      string
	pod       string
	node      string
	namespace string
	output    string
	filter    Filter
}

// kinds maps every accepted spelling (istioctl's subcommand names and aliases) to the table.
var kinds = map[string]string{
	"workload": "workloads", "workloads": "workloads", "w": "workloads",
	"service": "services", "services": "services", "s": "services", "svc": "services",
	"policy": "policies", "policies": "policies", "p": "policies", "pol": "policies",
	"connection": "connections", "connections": "connections", "cons": "connections",
	"certificate": "certificates", "certificates": "certificates", "certs": "certificates", "cert": "certificates",
	"all": "all",
}

// NewCommand returns `meshlab ztunnel-config`.
func NewCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "ztunnel-config workload|service|policy|certificate|connections|all [--file DUMP | --pod ztunnel-POD | --node NODE]",
		Short: "Show what a ztunnel knows and carries, as istioctl ztunnel-config prints it",
		Long: `Prints a ztunnel's workloads, services, L4 policies, certificates or open connections (or all of
them) from its config dump, in istioctl ztunnel-config's tables: --file reads a saved dump (GET
localhost:15000/config_dump of meshlab's or Istio's ztunnel; "-" is stdin), --pod fetches it from a
ztunnel pod through the API server's port-forward (--node: the one on that node; default: the first
ztunnel pod).`,
		Args: cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runE(cmd.Context(), env, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "read the config dump from this file (- for stdin)")
	fl.StringVar(&f.pod, "pod", "", "fetch the config dump from this ztunnel pod")
	fl.StringVar(&f.node, "node", "", "fetch the config dump from the ztunnel pod on this node")
	fl.StringVarP(&f.namespace, "namespace", "n", manifests.ZtunnelNamespace, "namespace of the ztunnel pod")
	fl.StringVarP(&f.output, "output", "o", "short", "output format: short (tables), json or yaml")
	fl.StringVar(&f.filter.WorkloadNamespace, "workload-namespace", "", "workload, connections: only this namespace")
	fl.StringVar(&f.filter.Address, "address", "", "workload: only the workload with this address")
	fl.StringVar(&f.filter.WorkloadNode, "workload-node", "", "workload: only workloads on this node")
	fl.StringVar(&f.filter.ServiceNamespace, "service-namespace", "", "service: only this namespace")
	fl.StringVar(&f.filter.PolicyNamespace, "policy-namespace", "", "policy: only this namespace")
	fl.StringVar(&f.filter.Direction, "direction", "", "connections: only inbound or outbound")
	fl.BoolVar(&f.filter.Raw, "raw", false, "connections: show IP addresses instead of names")
	fl.BoolVar(&f.filter.WithHeaders, "with-headers", false, "all: print a header above each table")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole, what string) error {
	kind, ok := kinds[what]
	if !ok {
		return cliutil.Usagef("unknown kind %q: want workload, service, policy, certificate, connections or all", what)
	}
	switch f.output {
	case "short", "table", "", "json", "yaml":
	default:
		return cliutil.Usagef("unknown output format %q: want short, json or yaml", f.output)
	}
	switch f.filter.Direction {
	case "", "inbound", "outbound":
	default:
		return cliutil.Usagef("unknown direction %q: want inbound or outbound", f.filter.Direction)
	}
	if n := btoi(f.file != "") + btoi(f.pod != "") + btoi(f.node != ""); n > 1 {
		return cliutil.Usagef("at most one of --file, --pod and --node")
	}
	var d Dump
	var err error
	if f.file != "" {
		d, err = readFile(env, f.file)
	} else {
		d, err = fetch(ctx, env, f.namespace, f.pod, f.node)
	}
	if err != nil {
		return err
	}
	return Print(env.Streams.Out, d, kind, f.output, f.filter)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readFile reads a saved dump; a file that is not one ends meshlab with exit code 2.
func readFile(env cliutil.Env, path string) (Dump, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(env.Streams.In)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return Dump{}, &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reading %s: %w", path, err)}
	}
	d, err := Decode(b)
	if errors.Is(err, errNotADump) {
		return Dump{}, &cliutil.ExitError{Code: 2, Err: fmt.Errorf("%s: %w", path, err)}
	}
	return d, err
}

// fetch port-forwards to the ztunnel pod's loopback admin port and GETs /config_dump.
// node, if set, chooses the ztunnel pod on that node.
func fetch(ctx context.Context, env cliutil.Env, namespace, pod, node string) (Dump, error) {
	cfg, err := cliutil.RESTConfig(env)
	if err != nil {
		return Dump{}, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Dump{}, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	if pod == "" {
		opts := metav1.ListOptions{LabelSelector: "app=" + manifests.ZtunnelName}
		where := "in " + namespace
		if node != "" {
			opts.FieldSelector, where = "spec.nodeName="+node, where+" on node "+node
		}
		pods, err := kube.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return Dump{}, fmt.Errorf("listing ztunnel pods: %w", err)
		}
		if len(pods.Items) == 0 {
			return Dump{}, fmt.Errorf("no ztunnel pod %s (is the mesh up?)", where)
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		pod = pods.Items[0].Name
		env.Logger.V(1)("reading ztunnel pod %s/%s", namespace, pod)
	}
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return Dump{}, fmt.Errorf("preparing port-forward: %w", err)
	}
	url := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", app.AdminPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return Dump{}, fmt.Errorf("port-forwarding to %s/%s: %w", namespace, pod, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return Dump{}, fmt.Errorf("port-forwarding to %s/%s: %w", namespace, pod, err)
	case <-ctx.Done():
		return Dump{}, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		return Dump{}, fmt.Errorf("port-forwarding to %s/%s: no local port (%v)", namespace, pod, err)
	}
	src := fmt.Sprintf("http://127.0.0.1:%d/config_dump", ports[0].Local)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Dump{}, fmt.Errorf("reading %s/%s's config dump: %w", namespace, pod, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return Dump{}, fmt.Errorf("reading %s/%s's config dump: %s %v", namespace, pod, resp.Status, err)
	}
	d, err := Decode(b)
	if err != nil {
		return Dump{}, fmt.Errorf("reading %s/%s's config dump: %w", namespace, pod, err)
	}
	return d, nil
}
