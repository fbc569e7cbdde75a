// Package ztunnelconfig is `meshlab ztunnel-config`: istioctl's `ztunnel-config` tables (workloads, services,
// policies, connections, certificates) printed from a ztunnel config dump, read from a file or fetched from
// a ztunnel pod's loopback admin port (15000) through the API server's port-forward.
package ztunnelconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
	"github.com/meshlab/meshlab/manifests"
)

type flagpole struct {
	file      string
	pod       string
	namespace string
	output    string
}

// kinds maps every accepted spelling (istioctl takes the singular) to the table.
var kinds = map[string]string{
	"workload": "workloads", "workloads": "workloads",
	"service": "services", "services": "services",
	"policy": "policies", "policies": "policies",
	"connection": "connections", "connections": "connections",
	"certificate": "certificates", "certificates": "certificates", "certs": "certificates",
	"all": "all",
}

// NewCommand returns `meshlab ztunnel-config`.
func NewCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "ztunnel-config workloads|services|policies|connections|certificates|all [--file DUMP | --pod ztunnel-POD]",
		Short: "Show what a ztunnel knows and carries, in istioctl's ztunnel-config formats",
		Long: `Prints a ztunnel's workloads, services, L4 policies, open connections or certificates from its config
dump: --file reads a saved dump (GET localhost:15000/config_dump), --pod fetches it from a ztunnel pod
through the API server's port-forward (default: the first ztunnel pod).`,
		Args: cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runE(cmd.Context(), env, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read the config dump from this file")
	fl.StringVar(&f.pod, "pod", "", "fetch the config dump from this ztunnel pod")
	fl.StringVarP(&f.namespace, "namespace", "n", manifests.ZtunnelNamespace, "namespace of the ztunnel pod")
	fl.StringVarP(&f.output, "output", "o", "", "output format: table (default), json or yaml")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole, what string) error {
	kind, ok := kinds[what]
	if !ok {
		return cliutil.Usagef("unknown kind %q: want workloads, services, policies, connections, certificates or all", what)
	}
	switch f.output {
	case "", "table", "json", "yaml":
	default:
		return cliutil.Usagef("unknown output format %q: want table, json or yaml", f.output)
	}
	if f.file != "" && f.pod != "" {
		return cliutil.Usagef("--file and --pod are exclusive")
	}
	var d configdump.Dump
	var err error
	if f.file != "" {
		d, err = readFile(f.file)
	} else {
		d, err = fetch(ctx, env, f.namespace, f.pod)
	}
	if err != nil {
		return err
	}
	return Print(env.Streams.Out, d, kind, f.output)
}

func readFile(path string) (configdump.Dump, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return configdump.Dump{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return decode(b, path)
}

func decode(b []byte, from string) (configdump.Dump, error) {
	var d configdump.Dump
	if err := json.Unmarshal(b, &d); err != nil {
		return configdump.Dump{}, fmt.Errorf("decoding the config dump from %s: %w", from, err)
	}
	return d, nil
}

// Print writes one kind ("all" for every table) in format ("" or "table", "json", "yaml").
func Print(w io.Writer, d configdump.Dump, kind, format string) error {
	var v any
	switch kind {
	case "workloads":
		v = d.Workloads
	case "services":
		v = d.Services
	case "policies":
		v = d.Policies
	case "connections":
		v = d.Connections
	case "certificates":
		v = d.Certificates
	default:
		v = d
	}
	switch format {
	case "json":
		return cliutil.WriteJSON(w, v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	tables := []string{kind}
	if kind == "all" {
		tables = []string{"services", "workloads", "policies", "certificates", "connections"}
	}
	for i, t := range tables {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		switch t {
		case "workloads":
			workloadTable(tw, d.Workloads)
		case "services":
			serviceTable(tw, d.Services)
		case "policies":
			policyTable(tw, d.Policies)
		case "connections":
			connectionTable(tw, d.Connections)
		case "certificates":
			certificateTable(tw, d.Certificates)
		}
	}
	return tw.Flush()
}

func row(w io.Writer, cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")) }

func workloadTable(w io.Writer, ws []configdump.Workload) {
	ws = append([]configdump.Workload(nil), ws...)
	sort.SliceStable(ws, func(i, j int) bool {
		if ws[i].Namespace != ws[j].Namespace {
			return ws[i].Namespace < ws[j].Namespace
		}
		return ws[i].Name < ws[j].Name
	})
	row(w, "NAMESPACE", "POD NAME", "ADDRESS", "NODE", "WAYPOINT", "PROTOCOL")
	for _, x := range ws {
		row(w, x.Namespace, x.Name, x.Address, x.Node, x.Waypoint, x.Protocol)
	}
}

func serviceTable(w io.Writer, ss []configdump.Service) {
	ss = append([]configdump.Service(nil), ss...)
	sort.SliceStable(ss, func(i, j int) bool {
		if ss[i].Namespace != ss[j].Namespace {
			return ss[i].Namespace < ss[j].Namespace
		}
		return ss[i].Name < ss[j].Name
	})
	row(w, "NAMESPACE", "SERVICE NAME", "SERVICE VIP", "WAYPOINT", "ENDPOINTS")
	for _, s := range ss {
		vip := strings.Join(s.VIPs, ",")
		row(w, s.Namespace, s.Name, vip, s.Waypoint, fmt.Sprintf("%d/%d", s.Healthy, len(s.Endpoints)))
	}
}

func policyTable(w io.Writer, ps []configdump.Policy) {
	row(w, "NAMESPACE", "POLICY NAME", "ACTION", "SCOPE")
	for _, p := range ps {
		row(w, p.Namespace, p.Name, p.Action, p.Scope)
	}
}

// connectionTable names workloads as istioctl does, name.namespace, and capitalises the direction.
func connectionTable(w io.Writer, cs []configdump.Connection) {
	row(w, "WORKLOAD", "DIRECTION", "LOCAL", "REMOTE", "REMOTE TARGET", "PROTOCOL")
	for _, c := range cs {
		name := c.Workload
		if ns, n, ok := strings.Cut(c.Workload, "/"); ok {
			name = n + "." + ns
		}
		dir := c.Direction
		if dir != "" {
			dir = strings.ToUpper(dir[:1]) + dir[1:]
		}
		row(w, name, dir, c.Local, c.Remote, c.RemoteTarget, c.Protocol)
	}
}

func certificateTable(w io.Writer, cs []configdump.Certificate) {
	row(w, "CERTIFICATE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")
	for _, c := range cs {
		for _, ci := range c.Chain {
			row(w, c.Identity, ci.Type, c.State, fmt.Sprint(ci.Valid), ci.SerialNumber,
				ci.NotAfter.UTC().Format(time.RFC3339), ci.NotBefore.UTC().Format(time.RFC3339))
		}
	}
}

// fetch port-forwards to the ztunnel pod's loopback admin port and GETs /config_dump.
func fetch(ctx context.Context, env cliutil.Env, namespace, pod string) (configdump.Dump, error) {
	cfg, err := cliutil.RESTConfig(env)
	if err != nil {
		return configdump.Dump{}, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return configdump.Dump{}, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	if pod == "" {
		pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + manifests.ZtunnelName})
		if err != nil {
			return configdump.Dump{}, fmt.Errorf("listing ztunnel pods: %w", err)
		}
		if len(pods.Items) == 0 {
			return configdump.Dump{}, fmt.Errorf("no ztunnel pod in %s (is the mesh up?)", namespace)
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		pod = pods.Items[0].Name
		env.Logger.V(1)("reading ztunnel pod %s/%s", namespace, pod)
	}
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return configdump.Dump{}, fmt.Errorf("preparing port-forward: %w", err)
	}
	url := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", app.AdminPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return configdump.Dump{}, fmt.Errorf("port-forwarding to %s/%s: %w", namespace, pod, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return configdump.Dump{}, fmt.Errorf("port-forwarding to %s/%s: %w", namespace, pod, err)
	case <-ctx.Done():
		return configdump.Dump{}, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		return configdump.Dump{}, fmt.Errorf("port-forwarding to %s/%s: no local port (%v)", namespace, pod, err)
	}
	src := fmt.Sprintf("http://127.0.0.1:%d/config_dump", ports[0].Local)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return configdump.Dump{}, fmt.Errorf("reading %s/%s's config dump: %w", namespace, pod, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return configdump.Dump{}, fmt.Errorf("reading %s/%s's config dump: %s %v", namespace, pod, resp.Status, err)
	}
	return decode(b, namespace+"/"+pod)
}
