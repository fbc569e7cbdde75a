package controlplane

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/bench/xdssim"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
)

// PushOptions configure MeasurePush.
type PushOptions struct {
	// Proxies is the number of simulated proxies, each on its own gRPC connection.
	Proxies int
	// Model is ModelSidecar (default: every proxy is a sidecar) or ModelAmbient (the 4 waypoint replicas of
	// the issue's mesh, and ztunnels for the rest).
	Model string
	// Changes is the number of config changes measured.
	Changes int
	// Timeout bounds the wait for one change to reach every proxy (default 60s).
	Timeout time.Duration
	// Logf receives progress lines; nil discards.
	Logf func(format string, args ...any)
}

// Proxy models of MeasurePush.
const (
	ModelSidecar = "sidecar"
	ModelAmbient = "ambient"
)

// PushResult is the convergence time of config changes: from the change entering the store until the last
// affected proxy had ACKed it.
type PushResult struct {
	Model   string
	Proxies int
	// Affected is how many proxies each change reaches (and is waited for).
	Affected int
	Changes  int
	Services int
	P50, P99 time.Duration
	Max      time.Duration
	// Samples holds one duration per change, in order.
	Samples []time.Duration
	// CacheHits and CacheMisses count the generators' cache lookups during the changes (not the initial
	// sync): how much of each push was served from encodings shared across proxies and pushes.
	CacheHits, CacheMisses uint64
}

// PushMesh is the mesh MeasurePush runs on for n proxies: the issue's 2 namespaces x 25 services, with
// enough pods per service for one sidecar per pod.
func PushMesh(proxies int) Mesh {
	m := IssueMesh
	m.PodsPerService = max(1, (proxies+m.Services()-1)/m.Services())
	return m
}

// routeName is the HTTPRoute whose weights MeasurePush changes.
const routeName = "svc-0-split"

// splitRoute routes svc-0 in ns-0 to svc-0 and svc-1 with weights w and 100-w.
func splitRoute(w int32, generation int64) *gwv1.HTTPRoute {
	kind, port := gwv1.Kind("Service"), gwv1.PortNumber(AppPort)
	group := gwv1.Group("")
	backend := func(name string, weight int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port},
			Weight:                 &weight,
		}}
	}
	return &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: routeName, Namespace: NamespaceName(0), Generation: generation},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: gwv1.ObjectName(ServiceName(0)), Port: &port}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend(ServiceName(0), w), backend(ServiceName(1), 100-w)}}},
		},
	}
}

// MeasurePush runs the real xDS server (controlplane/xds) with the live control plane's generator
// (controlplane/xdsgen, building model snapshots from an ingest store) on loopback gRPC, connects
// opts.Proxies simulated sidecars over Delta ADS (CDS, EDS, LDS, RDS), and then changes an HTTPRoute's
// weights opts.Changes times. Every sidecar holds every service's routes, so every change affects every
// proxy; each sample runs from the store update until the last proxy has ACKed the new RDS. Debounce is
// off, so the debounce window (100 ms quiet by default) is excluded; snapshot building, generation,
// encoding, sending and the ACKs are included.
func MeasurePush(ctx context.Context, opts PushOptions) (PushResult, error) {
	if opts.Proxies < 1 || opts.Changes < 1 {
		return PushResult{}, fmt.Errorf("need at least one proxy and one change, got %d and %d", opts.Proxies, opts.Changes)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	mesh := PushMesh(opts.Proxies)
	if opts.Model == ModelAmbient {
		mesh = IssueMesh // the proxies are its waypoints and ztunnels, not one per pod
	}
	store, err := mesh.Store()
	if err != nil {
		return PushResult{}, err
	}
	generation := int64(1)
	if _, err := store.Add(splitRoute(90, generation)); err != nil {
		return PushResult{}, err
	}
	gen := xdsgen.New(store)
	srv := xds.NewServer(gen, xds.WithDebounce(0, 0), xds.WithCache(gen.Cache()))
	store.OnChange(func(ev ingest.Event) {
		if req := gen.PushRequestFor(ev); req != nil {
			srv.ConfigUpdate(req)
		}
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv.Start(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return PushResult{}, fmt.Errorf("listening on loopback: %w", err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go gs.Serve(lis)
	defer gs.Stop()

	// waiting counts down the proxies that have not yet ACKed the change in flight; seen[i] holds the
	// change number proxy i last ACKed, so a proxy is counted once per change.
	var (
		mu       sync.Mutex
		current  int64 = -1
		started  time.Time
		waiting  atomic.Int64
		seen     = make([]int64, opts.Proxies)
		lastAck  time.Time
		allAcked = make(chan time.Time, 1)
	)
	for i := range seen {
		seen[i] = -1
	}
	var clients []*xdssim.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	envoyTypes := []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route}
	ztunnelTypes := []string{xdstype.Address, xdstype.Authorization}
	var ids []string
	affected := map[int]bool{}
	switch opts.Model {
	case "", ModelSidecar:
		opts.Model = ModelSidecar
		ids = sidecarIDs(mesh, opts.Proxies)
		for i := range ids {
			affected[i] = true
		}
	case ModelAmbient:
		ids = ambientIDs(store, opts.Proxies)
		for i, id := range ids {
			if strings.HasPrefix(id, "waypoint~") && strings.HasSuffix(id, "~"+NamespaceName(0)+".svc.cluster.local") {
				affected[i] = true
			}
		}
	default:
		return PushResult{}, fmt.Errorf("unknown proxy model %q; want %s or %s", opts.Model, ModelSidecar, ModelAmbient)
	}
	if len(affected) == 0 {
		return PushResult{}, fmt.Errorf("no proxy is affected by the change with %d %s proxies", opts.Proxies, opts.Model)
	}
	for i, id := range ids {
		i := i
		types := envoyTypes
		if strings.HasPrefix(id, "ztunnel") {
			types = ztunnelTypes
		}
		c, err := xdssim.Dial(ctx, lis.Addr().String(), xdssim.Options{ID: id, Types: types, OnResponse: func(r xdssim.Response) {
			if r.Resp.GetTypeUrl() != xdstype.Route || !affected[i] {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if current < 0 || seen[i] == current || r.Acked.Before(started) {
				return
			}
			seen[i] = current
			if r.Acked.After(lastAck) {
				lastAck = r.Acked
			}
			if waiting.Add(-1) == 0 {
				allAcked <- lastAck
			}
		}})
		if err != nil {
			return PushResult{}, err
		}
		clients = append(clients, c)
	}
	logf("%d simulated %s proxies connected; waiting for their initial config", len(clients), opts.Model)
	if err := waitSynced(ctx, srv, len(ids), opts.Timeout); err != nil {
		return PushResult{}, err
	}

	res := PushResult{Model: opts.Model, Proxies: opts.Proxies, Affected: len(affected), Changes: opts.Changes, Services: mesh.Services()}
	hits0, misses0 := gen.Cache().Stats()
	for n := range opts.Changes {
		generation++
		w := int32(10 + (n*37)%80) // a different split each time, never 90 twice in a row
		mu.Lock()
		current, started, lastAck = int64(n), time.Now(), time.Time{}
		waiting.Store(int64(len(affected)))
		mu.Unlock()
		if _, err := store.Update(splitRoute(w, generation)); err != nil {
			return PushResult{}, err
		}
		select {
		case last := <-allAcked:
			res.Samples = append(res.Samples, last.Sub(started))
		case <-time.After(opts.Timeout):
			return PushResult{}, fmt.Errorf("change %d: %d of %d affected proxies had not ACKed after %s", n, waiting.Load(), len(affected), opts.Timeout)
		case <-ctx.Done():
			return PushResult{}, ctx.Err()
		}
	}
	hits, misses := gen.Cache().Stats()
	res.CacheHits, res.CacheMisses = hits-hits0, misses-misses0
	logf("generators' cache during the changes: %d hits, %d misses", res.CacheHits, res.CacheMisses)
	res.P50, res.P99 = Percentile(res.Samples, 50), Percentile(res.Samples, 99)
	res.Max = slices.Max(res.Samples)
	return res, nil
}

// sidecarIDs names n sidecars, spread over services and namespaces round-robin.
func sidecarIDs(m Mesh, n int) []string {
	ids := make([]string, 0, n)
	for k := 0; len(ids) < n; k++ {
		for i := 0; i < m.Namespaces && len(ids) < n; i++ {
			for j := 0; j < m.ServicesPerNamespace && len(ids) < n; j++ {
				ids = append(ids, "sidecar/"+NamespaceName(i)+"/"+PodName(j, k))
			}
		}
	}
	return ids
}

// ambientIDs names n proxies of the issue's mesh in the waypoint model: its 4 waypoint replicas (by
// pod, in Istio's node ID form, so that replicas are told apart), then ztunnels for nodes node-0, node-1...
func ambientIDs(store *ingest.Store, n int) []string {
	var ids []string
	for _, o := range store.List(ingest.KindPod) {
		if len(ids) < n && o.GetLabels()[model.LabelGatewayName] != "" {
			pod := o.(*corev1.Pod)
			ids = append(ids, fmt.Sprintf("waypoint~%s~%s.%s~%s.svc.cluster.local", pod.Status.PodIP, pod.Name, pod.Namespace, pod.Namespace))
		}
	}
	for k := 0; len(ids) < n; k++ {
		ids = append(ids, "ztunnel/"+nodeName(k))
	}
	return ids
}

// waitSynced waits until the server has n proxies connected, each with every type it subscribes to ACKed.
func waitSynced(ctx context.Context, srv *xds.Server, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st := srv.SyncStatus()
		synced := 0
		for _, p := range st.Proxies {
			ok := len(p.Types) > 0
			for _, ts := range p.Types {
				if !ts.Synced() {
					ok = false
					break
				}
			}
			if ok {
				synced++
			}
		}
		if synced == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d proxies synced after %s", synced, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Percentile returns the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}
