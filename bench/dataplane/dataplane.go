// Package dataplane measures meshlab's data plane in network namespaces, with no cluster: requests per
// second, latency percentiles, and CPU and peak memory of each proxy for the three paths of a mesh —
// direct (no proxy), ztunnel to ztunnel over HBONE, and ztunnel to waypoint to ztunnel — and for a floor
// to read them against: two plain TCP forwarders in ztunnel's place, with its capture and no TLS or
// HTTP/2. Pods and nodes are network namespaces (dataplane/netnstest); every proxy runs as its own
// process so that its CPU (utime+stime) and peak RSS (VmHWM) can be read from /proc. The load generator
// and the 1 KB HTTP server run in the benchmark's process, from inside the client and server pods'
// namespaces. `meshlab bench dataplane` prints the results; docs/benchmarks.md explains them.
package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/internal/procstat"
)

// Paths.
const (
	PathDirect    = "direct"
	PathForwarder = "forwarder-forwarder"
	PathZtunnel   = "ztunnel-ztunnel"
	PathWaypoint  = "ztunnel-waypoint-ztunnel"
)

// AllPaths lists every path in report order.
var AllPaths = []string{PathDirect, PathForwarder, PathZtunnel, PathWaypoint}

// ServerPort is where the benchmark's HTTP server listens in its pod.
const ServerPort = 8080

// Options configure Run.
type Options struct {
	Paths       []string
	Connections []int
	Duration    time.Duration
	MaxRequests int
	QPS         float64
	// ProxyCommand returns the command line (and extra environment) that runs one proxy from a spec file:
	// `meshlab bench proxy --spec FILE`, or a test binary re-executed. It is started inside the proxy's
	// node namespace.
	ProxyCommand func(specPath string) (argv []string, env []string)
	Logf         func(format string, args ...any)
}

// Result is one path at one connection count. Field names are the issue's.
type Result struct {
	Path        string  `json:"path"`
	Connections int     `json:"connections"`
	RPS         float64 `json:"rps"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// AddedP50Ms is P50Ms minus the direct path's at the same connection count, when the same run measured
	// it: the latency the proxies add, which the goals are stated in.
	AddedP50Ms *float64 `json:"added_p50_ms,omitempty"`
	// CPUPer1000 is each proxy's CPU seconds per 1,000 requests (numerically, vCPU at 1,000 rps).
	CPUPer1000 map[string]float64 `json:"cpu_s_per_1000_req"`
	// RSSMB is each proxy's peak resident memory during the run.
	RSSMB map[string]float64 `json:"rss_mb"`
	// RSSIdleMB is each proxy's resident memory before the run, configured but carrying no traffic: the
	// baseline of the binary it runs.
	RSSIdleMB map[string]float64 `json:"rss_idle_mb"`
	// RSSAnonMB is each proxy's anonymous resident memory at the end of the run (RssAnon): its heap and
	// stacks, without the pages of the meshlab binary it maps, which make up most of RSS and are shared
	// with every other meshlab process on the machine.
	RSSAnonMB map[string]float64 `json:"rss_anon_mb"`
	Requests  int                `json:"requests"`
	Errors    int                `json:"errors"`
	Error     string             `json:"error,omitempty"`
	// ProxyGOMAXPROCS is the GOMAXPROCS the proxies ran with when ProxyGOMAXPROCSEnv set it; 0 means the
	// Go default (the CPUs the process may use).
	ProxyGOMAXPROCS int `json:"proxy_gomaxprocs,omitempty"`
	// ProxyGODEBUG is the GODEBUG the proxies ran with (see ProxyGODEBUGEnv).
	ProxyGODEBUG string `json:"proxy_godebug"`
}

// ProxyGOMAXPROCSEnv, when set to N, runs every proxy process with GOMAXPROCS=N (the load generator and
// the server keep the default). At a low request rate a Go proxy with idle Ps wakes a second OS thread for
// nearly every goroutine hand-off; this measures what that costs.
const ProxyGOMAXPROCSEnv = "MESHLAB_BENCH_PROXY_GOMAXPROCS"

// ProxyGODEBUGEnv, when set (even empty), replaces the GODEBUG the proxies run with, which is otherwise
// mesh.ProxyGODEBUG, what meshlab deploys. MESHLAB_BENCH_PROXY_GODEBUG= measures the runtime's defaults.
const ProxyGODEBUGEnv = "MESHLAB_BENCH_PROXY_GODEBUG"

func proxyGODEBUG() string {
	if v, ok := os.LookupEnv(ProxyGODEBUGEnv); ok {
		return v
	}
	return mesh.ProxyGODEBUG
}

// proxyGOMAXPROCS reads ProxyGOMAXPROCSEnv: 0 when unset.
func proxyGOMAXPROCS() (int, error) {
	v := os.Getenv(ProxyGOMAXPROCSEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", ProxyGOMAXPROCSEnv, v)
	}
	return n, nil
}

// proc is one running proxy process.
type proc struct {
	name string
	cmd  *exec.Cmd
	stop func()
}

// mesh is the benchmark's network: node0 holds the clients, node1 the servers.
type testbed struct {
	net          *netnstest.Network
	node0, node1 *netnstest.Node
	caDir        string
}

// Run builds the network under tb (netnstest registers every namespace's removal with tb.Cleanup) and
// measures each path at each connection count.
func Run(ctx context.Context, tb testing.TB, opts Options) ([]Result, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.ProxyCommand == nil {
		return nil, errors.New("no ProxyCommand to start proxies with")
	}
	caDir, err := os.MkdirTemp("", "meshlab-bench-ca-")
	if err != nil {
		return nil, fmt.Errorf("creating the CA directory: %w", err)
	}
	tb.Cleanup(func() { os.RemoveAll(caDir) })
	if _, err := ca.LoadOrCreate(caDir, ca.WithTTL(time.Hour)); err != nil {
		return nil, fmt.Errorf("creating the benchmark CA: %w", err)
	}
	n := netnstest.New(tb)
	m := &testbed{net: n, node0: n.AddNode("client"), node1: n.AddNode("server"), caDir: caDir}

	var out []Result
	for _, path := range opts.Paths {
		for _, conns := range opts.Connections {
			logf("%s, %d connection(s)", path, conns)
			r, err := m.runPath(ctx, tb, opts, path, conns, logf)
			if err != nil {
				return out, fmt.Errorf("%s with %d connections: %w", path, conns, err)
			}
			out = append(out, r)
		}
	}
	setAddedP50(out)
	return out, nil
}

// setAddedP50 fills AddedP50Ms of every proxied result that has a direct result at its connection count.
func setAddedP50(results []Result) {
	direct := map[int]float64{}
	for _, r := range results {
		if r.Path == PathDirect {
			direct[r.Connections] = r.P50Ms
		}
	}
	for i, r := range results {
		if d, ok := direct[r.Connections]; ok && r.Path != PathDirect {
			added := round(r.P50Ms-d, 3)
			results[i].AddedP50Ms = &added
		}
	}
}

func (m *testbed) runPath(ctx context.Context, tb testing.TB, opts Options, path string, conns int, logf func(string, ...any)) (Result, error) {
	// Fresh pods for every run, so that no connection, pool or capture rule carries over.
	tag := fmt.Sprintf("%s-%d", path[:2], conns)
	client, server := m.node0.AddPod("c"+tag), m.node1.AddPod("s"+tag)
	stopServer, err := serve(server)
	if err != nil {
		return Result{}, err
	}
	defer stopServer()

	var (
		procs   []*proc
		stopXDS = func() {}
	)
	defer func() {
		for _, p := range procs {
			p.stop()
		}
		stopXDS() // after the waypoint, which would otherwise log the stream's end
	}()
	target := server.Addr(ServerPort)
	if path == PathForwarder {
		ps, err := m.startNodeProxies(ctx, opts, "forwarder", ztunnel.Config{}, client, server)
		procs = append(procs, ps...)
		if err != nil {
			return Result{}, err
		}
	}
	if path == PathZtunnel || path == PathWaypoint {
		cfg := ztunnel.Config{Workloads: []ztunnel.Workload{
			meshWorkload(client, "client", "node0"), meshWorkload(server, "server", "node1"),
		}}
		if path == PathWaypoint {
			wp := m.node1.AddPod("w" + tag)
			stop, err := serveWaypointConfig(ctx, client, server, wp)
			if err != nil {
				return Result{}, err
			}
			stopXDS = stop
			spec := ProxySpec{Role: "waypoint", Name: "waypoint", CADir: m.caDir, Namespace: benchNamespace, Gateway: waypointName,
				IP: wp.IP.String(), XDSAddress: xdsAddress}
			p, err := startProxy(ctx, &wp.Namespace, spec, opts.ProxyCommand)
			if err != nil {
				return Result{}, err
			}
			procs = append(procs, p)
			gw := &ztunnel.GatewayAddress{Address: wp.IP}
			cfg.Workloads = append(cfg.Workloads, ztunnel.Workload{UID: wp.PodName, Name: wp.PodName, Namespace: benchNamespace,
				ServiceAccount: waypointName, Node: "node1", IP: wp.IP, Protocol: ztunnel.ProtocolHBONE})
			cfg.Workloads[1].Waypoint = gw
			cfg.Services = []ztunnel.Service{{Name: "server", Namespace: benchNamespace, Hostname: "server." + benchNamespace + ".svc.cluster.local",
				VIPs: []netip.Addr{serviceVIP}, Ports: map[uint16]uint16{ServerPort: ServerPort}, Endpoints: []string{server.PodName}, Waypoint: gw}}
			target = netip.AddrPortFrom(serviceVIP, ServerPort).String()
		}
		ps, err := m.startNodeProxies(ctx, opts, "ztunnel", cfg, client, server)
		procs = append(procs, ps...)
		if err != nil {
			return Result{}, err
		}
	}

	lo := LoadOptions{URL: "http://" + target + "/", Connections: conns, Duration: opts.Duration,
		MaxRequests: opts.MaxRequests, QPS: opts.QPS, Dial: client.DialContext}
	workers := make([]*worker, conns)
	for i := range workers {
		workers[i] = newWorker(lo)
		defer workers[i].close()
	}
	idle := map[string]float64{}
	for _, p := range procs {
		kb, err := procstat.StatusKB(strconv.Itoa(p.cmd.Process.Pid), "VmRSS")
		if err != nil {
			return Result{}, err
		}
		idle[p.name] = round(float64(kb)/1024, 1)
		if err := resetPeak(p.cmd.Process.Pid); err != nil {
			return Result{}, fmt.Errorf("resetting the peak RSS of %s: %w", p.name, err)
		}
	}
	if err := warm(ctx, workers); err != nil {
		return Result{}, err
	}
	before := map[string]procStats{}
	for _, p := range procs {
		st, err := readProcStats(p.cmd.Process.Pid)
		if err != nil {
			return Result{}, err
		}
		before[p.name] = st
	}
	lr := run(ctx, lo, workers)
	res := Result{Path: path, Connections: conns, Requests: lr.Requests, Errors: lr.Errors,
		RPS: round(lr.RPS(), 1), P50Ms: msOf(lr.Percentile(50)), P90Ms: msOf(lr.Percentile(90)), P99Ms: msOf(lr.Percentile(99)),
		CPUPer1000: map[string]float64{}, RSSMB: map[string]float64{}, RSSIdleMB: idle, RSSAnonMB: map[string]float64{}}
	if len(procs) > 0 {
		res.ProxyGOMAXPROCS, _ = proxyGOMAXPROCS() // already validated by startProxy
		res.ProxyGODEBUG = proxyGODEBUG()
	}
	for _, p := range procs {
		st, err := readProcStats(p.cmd.Process.Pid)
		if err != nil {
			return Result{}, err
		}
		if lr.Requests > 0 {
			res.CPUPer1000[p.name] = round((st.cpu-before[p.name].cpu).Seconds()*1000/float64(lr.Requests), 4)
		}
		res.RSSMB[p.name] = round(float64(st.hwmKB)/1024, 1)
		res.RSSAnonMB[p.name] = round(float64(st.anonKB)/1024, 1)
	}
	if lr.Requests == 0 {
		return res, fmt.Errorf("no request succeeded (%d errors; first: %v)", lr.Errors, lr.FirstErr)
	}
	if lr.Errors > 0 {
		logf("%s, %d connections: %d errors, first: %v", path, conns, lr.Errors, lr.FirstErr)
	}
	return res, nil
}

// startNodeProxies starts one proxy of role on each node, as a DaemonSet would, enrolling that node's pod
// (client on node0, server on node1). It returns the proxies it started, also on error, for stopping.
func (m *testbed) startNodeProxies(ctx context.Context, opts Options, role string, cfg ztunnel.Config, client, server *netnstest.Pod) ([]*proc, error) {
	var procs []*proc
	for i, e := range []struct {
		node *netnstest.Node
		pod  *netnstest.Pod
	}{{m.node0, client}, {m.node1, server}} {
		spec := ProxySpec{Role: role, Name: fmt.Sprintf("%s-node%d", role, i), CADir: m.caDir, Node: fmt.Sprintf("node%d", i),
			Ztunnel: cfg, Pods: []PodRef{{UID: e.pod.PodName, Netns: e.pod.Path()}}}
		p, err := startProxy(ctx, &e.node.Namespace, spec, opts.ProxyCommand)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

func meshWorkload(p *netnstest.Pod, sa, node string) ztunnel.Workload {
	return ztunnel.Workload{UID: p.PodName, Name: p.PodName, Namespace: "bench", ServiceAccount: sa, Node: node,
		IP: p.IP, Protocol: ztunnel.ProtocolHBONE}
}

// serve runs the 1 KB HTTP server inside the server pod.
func serve(p *netnstest.Pod) (stop func(), err error) {
	l, err := p.Listen("tcp4", fmt.Sprintf(":%d", ServerPort))
	if err != nil {
		return nil, fmt.Errorf("listening in %s: %w", p.PodName, err)
	}
	body := []byte(strings.Repeat("x", PayloadSize))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})}
	go srv.Serve(l)
	return func() { srv.Close() }, nil
}

// startProxy writes spec, starts the proxy process in node's namespace and waits for it to be ready.
func startProxy(ctx context.Context, ns *netnstest.Namespace, spec ProxySpec, command func(string) ([]string, []string)) (*proc, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(spec.CADir, spec.Name+".json")
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing the spec of %s: %w", spec.Name, err)
	}
	argv, env := command(specPath)
	procs, err := proxyGOMAXPROCS()
	if err != nil {
		return nil, err
	}
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	env = append(env, "GODEBUG="+proxyGODEBUG())
	cmd := ns.Command(context.WithoutCancel(ctx), argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = dropSchedTrace{os.Stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	p := &proc{name: spec.Name, cmd: cmd}
	p.stop = func() {
		stdin.Close() // the proxy exits when its stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == ReadySignal {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("%s exited before it was ready", spec.Name)
	}()
	select {
	case err = <-ready:
	case <-time.After(20 * time.Second):
		err = fmt.Errorf("%s not ready after 20s", spec.Name)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func msOf(d time.Duration) float64 { return round(float64(d.Nanoseconds())/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// dropSchedTrace passes a proxy's stderr through without the runtime's "SCHED" line, which mesh.ProxyGODEBUG
// makes every proxy print once when it starts.
type dropSchedTrace struct{ w io.Writer }

func (d dropSchedTrace) Write(p []byte) (int, error) {
	var out []byte
	for line := range bytes.Lines(p) {
		if !bytes.HasPrefix(line, []byte("SCHED ")) {
			out = append(out, line...)
		}
	}
	if len(out) > 0 {
		if _, err := d.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
