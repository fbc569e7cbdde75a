package workloadxds

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/api/xdstype"
	cpxds "github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/identity/ca"
)

// world is the in-test Generator's input: workload API resources by resource name.
type world struct {
	mu    sync.Mutex
	addrs map[string]*workloadapi.Address
	authz map[string]*security.Authorization
}

func (w *world) generate(_ *cpxds.Proxy, typeURL string, _ *cpxds.PushRequest) (cpxds.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var res cpxds.Result
	add := func(name string, r *discovery.Resource, err error) error {
		if err != nil {
			return err
		}
		res.Resources = append(res.Resources, r)
		return nil
	}
	switch typeURL {
	case xdstype.Address:
		for n, a := range w.addrs {
			r, err := cpxds.Marshal(n, a)
			if err := add(n, r, err); err != nil {
				return res, err
			}
		}
	case xdstype.Authorization:
		for n, a := range w.authz {
			r, err := cpxds.Marshal(n, a)
			if err := add(n, r, err); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func (w *world) edit(fn func(w *world)) {
	w.mu.Lock()
	fn(w)
	w.mu.Unlock()
}

// controlPlane is the real xDS server on a loopback gRPC listener that can be stopped and restarted on
// the same address.
type controlPlane struct {
	t    *testing.T
	xds  *cpxds.Server
	addr string
	g    *grpc.Server
}

func (cp *controlPlane) start() {
	cp.t.Helper()
	lis, err := net.Listen("tcp", cp.addr)
	if err != nil {
		cp.t.Fatalf("listening on %s: %v", cp.addr, err)
	}
	cp.addr = lis.Addr().String()
	cp.g = grpc.NewServer()
	cp.xds.Register(cp.g)
	go cp.g.Serve(lis)
}

func (cp *controlPlane) push() {
	cp.xds.ConfigUpdate(cpxds.NewPushRequest(true, "config"))
}

func (cp *controlPlane) status(typeURL string) cpxds.TypeStatus {
	for _, p := range cp.xds.SyncStatus().Proxies {
		if p.ID == "ztunnel/worker" {
			ts, _ := p.Type(typeURL)
			return ts
		}
	}
	return cpxds.TypeStatus{}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func uids(cfg ztunnel.Config) []string {
	var out []string
	for _, w := range cfg.Workloads {
		out = append(out, w.UID)
	}
	return out
}

func policyNames(cfg ztunnel.Config) []string {
	var out []string
	for _, p := range cfg.Policies {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func TestClientAgainstTheControlPlane(t *testing.T) {
	w := &world{
		addrs: addrMap(
			workload("default", "productpage-v1", "bookinfo-productpage", "10.244.1.5", "worker", true, "productpage.default.svc.cluster.local"),
			workload("default", "sleep", "sleep", "10.244.1.6", "worker", true),
			service("default", "productpage", "10.96.0.20", nil),
		),
		authz: authzMap(&security.Authorization{Name: "allow-sleep", Namespace: "default", Scope: security.Scope_NAMESPACE,
			Groups: []*security.Group{group([]*security.Match{{Principals: []*security.StringMatch{exact("cluster.local/ns/default/sa/sleep")}}})}}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := cpxds.NewServer(cpxds.GeneratorFuncs{GenerateFunc: w.generate}, cpxds.WithDebounce(0, 0))
	srv.Start(ctx)
	cp := &controlPlane{t: t, xds: srv, addr: "127.0.0.1:0"}
	cp.start()
	defer func() { cp.g.Stop() }()

	// A real ztunnel receives the config: its SetConfig validates it (a NACK source).
	root, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	zt, err := ztunnel.New(ztunnel.Options{Node: "worker", Certs: ztunnel.NewCerts(root), Bundle: root.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var applied []ztunnel.Config
	c, err := New(Options{Conn: conn, Node: "worker", Logf: t.Logf, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Apply: func(cfg ztunnel.Config) error {
			if err := zt.SetConfig(cfg); err != nil {
				return err
			}
			mu.Lock()
			applied = append(applied, cfg)
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	last := func() ztunnel.Config {
		mu.Lock()
		defer mu.Unlock()
		if len(applied) == 0 {
			return ztunnel.Config{}
		}
		return applied[len(applied)-1]
	}

	// 1. Initial sync: one config, applied only once both types arrived, with everything in it.
	eventually(t, "the first config", func() bool { return c.Status().Synced })
	cfg := last()
	if got := uids(cfg); !slices.Equal(got, []string{"Kubernetes//Pod/default/productpage-v1", "Kubernetes//Pod/default/sleep"}) {
		t.Errorf("workloads = %v", got)
	}
	if len(cfg.Services) != 1 || len(cfg.Services[0].Endpoints) != 1 || !slices.Equal(policyNames(cfg), []string{"default/allow-sleep"}) {
		t.Errorf("services = %+v, policies = %v", cfg.Services, policyNames(cfg))
	}
	mu.Lock()
	if len(applied) != 1 {
		t.Errorf("applied %d configs on the initial sync, want 1 (not before policies arrived)", len(applied))
	}
	mu.Unlock()
	eventually(t, "both types ACKed", func() bool {
		return cp.status(xdstype.Address).Synced() && cp.status(xdstype.Authorization).Synced()
	})

	// 2. A change: a removed workload and a new policy.
	w.edit(func(w *world) {
		delete(w.addrs, "Kubernetes//Pod/default/sleep")
		w.authz["default/deny-9090"] = &security.Authorization{Name: "deny-9090", Namespace: "default", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY,
			Groups: []*security.Group{group([]*security.Match{{DestinationPorts: []uint32{9090}}})}}
	})
	cp.push()
	eventually(t, "the change", func() bool {
		cfg := last()
		return len(cfg.Workloads) == 1 && len(cfg.Policies) == 2
	})

	// 3. A malformed address is NACKed with the error; ztunnel keeps its config.
	good := last()
	w.edit(func(w *world) {
		w.addrs["broken"] = &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Uid: "broken", Addresses: [][]byte{{1, 2, 3}}}}}
	})
	cp.push()
	eventually(t, "a NACK recorded by the server", func() bool {
		return strings.Contains(cp.status(xdstype.Address).NackError, "workload broken: address of 3 bytes")
	})
	if st := c.Status(); st.Nacks != 1 || !strings.Contains(st.LastNack, "address of 3 bytes") {
		t.Errorf("client status = %+v, want one NACK", st)
	}
	if got := last(); len(got.Workloads) != len(good.Workloads) {
		t.Errorf("config changed after a NACK: %v", uids(got))
	}
	// The resources behind the applied config (what the config dump shows) are the last good ones too.
	if addrs, authz := c.Resources(); len(addrs) != 2 || addrs["broken"] != nil || len(authz) != 2 ||
		addrs["Kubernetes//Pod/default/productpage-v1"].GetWorkload().GetServiceAccount() != "bookinfo-productpage" {
		t.Errorf("Resources() = %v, %v; want the two addresses and two policies applied before the NACK", addrs, authz)
	}
	// So is one ztunnel itself refuses (two workloads with one uid).
	w.edit(func(w *world) {
		delete(w.addrs, "broken")
		w.addrs["dup"] = workload("default", "productpage-v1", "x", "10.244.1.9", "worker", true)
	})
	cp.push()
	eventually(t, "ztunnel's own refusal NACKed", func() bool {
		return strings.Contains(cp.status(xdstype.Address).NackError, "appears twice")
	})
	// The fix plus a change (the server resends nothing while the world equals what was last ACKed).
	w.edit(func(w *world) {
		delete(w.addrs, "dup")
		w.addrs["Kubernetes//Pod/default/details-v1"] = workload("default", "details-v1", "details", "10.244.1.7", "worker", true)
	})
	cp.push()
	eventually(t, "an ACK after the fix", func() bool {
		ts := cp.status(xdstype.Address)
		return ts.Synced() && ts.NackError == "" && len(last().Workloads) == 2
	})

	// 4. The control plane goes away; meanwhile the world changes; the client reconnects, says what it
	// holds, and the server sends the difference, removals included.
	cp.g.Stop()
	w.edit(func(w *world) {
		delete(w.authz, "default/allow-sleep")
		w.addrs["Kubernetes//Pod/default/ratings-v1"] = workload("default", "ratings-v1", "ratings", "10.244.1.8", "worker", true)
	})
	time.Sleep(100 * time.Millisecond) // let a reconnect attempt or two fail
	cp.start()
	eventually(t, "the config after reconnecting", func() bool {
		cfg := last()
		return slices.Equal(policyNames(cfg), []string{"default/deny-9090"}) && len(cfg.Workloads) == 3
	})
	if st := c.Status(); st.Streams < 2 {
		t.Errorf("streams opened = %d, want a reconnect", st.Streams)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
}

// TestNodeID checks what the control plane makes of ztunnel's node: meshlab's short form outside a
// cluster, Istio's form in one (the pod, as istioctl proxy-status lists it), the node always in NODE_NAME.
func TestNodeID(t *testing.T) {
	for _, tc := range []struct {
		opts            Options
		namespace, name string
	}{
		{Options{Node: "worker"}, "", "worker"},
		{Options{Node: "worker", ID: IstioNodeID("10.244.1.2", "ztunnel-abcde", "istio-system")}, "istio-system", "ztunnel-abcde"},
	} {
		node := (&Client{opts: tc.opts}).node()
		p := cpxds.NewProxy(node)
		if p.Kind != cpxds.KindZtunnel || p.Namespace != tc.namespace || p.Name != tc.name || p.Metadata["NODE_NAME"] != "worker" {
			t.Errorf("node %q: proxy kind %q namespace %q name %q NODE_NAME %q; want ztunnel %q %q worker",
				node.GetId(), p.Kind, p.Namespace, p.Name, p.Metadata["NODE_NAME"], tc.namespace, tc.name)
		}
	}
	if got := IstioNodeID("10.244.1.2", "ztunnel-abcde", "istio-system"); got != "ztunnel~10.244.1.2~ztunnel-abcde.istio-system~istio-system.svc.cluster.local" {
		t.Errorf("IstioNodeID = %q", got)
	}
}
