package scenarios

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Measured is one request as the path and latency checks send it: the answer plus what curl reported
// from inside the pod.
type Measured struct {
	Response
	// Local is the address curl sent from (pod IP:ephemeral port); empty when no connection was made.
	Local string
	// Total is curl's time_total: the request as the client in the pod saw it, without the exec round
	// trip that Response.Elapsed includes.
	Total time.Duration
	// RequestID is the x-request-id the request carried ("" unless the caller set one).
	RequestID string
}

// writeOutMarker starts the line curl's -w appends to the output; the body cannot be confused with it
// because the marker is looked for only as the last line.
const writeOutMarker = "--meshlab-measured--"

// measuredArgs is CurlArgs plus a -w line with curl's local address and total time.
func measuredArgs(req Request) []string {
	args := CurlArgs(req)
	url := args[len(args)-1]
	args = append(args[:len(args)-1], "-w", "\n"+writeOutMarker+" %{local_ip}:%{local_port} %{time_total}\n", url)
	return args
}

// splitWriteOut removes the -w line from curl's output and parses it.
func splitWriteOut(out string) (rest, local string, total time.Duration, err error) {
	i := strings.LastIndex(out, "\n"+writeOutMarker+" ")
	if i < 0 {
		if !strings.HasPrefix(out, writeOutMarker+" ") {
			return out, "", 0, fmt.Errorf("no %s line in curl's output", writeOutMarker)
		}
		i = -1
	}
	rest, line := out[:max(i, 0)], strings.TrimSpace(out[i+1+len(writeOutMarker):])
	f := strings.Fields(line)
	if len(f) != 2 {
		return rest, "", 0, fmt.Errorf("malformed %s line %q", writeOutMarker, line)
	}
	secs, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return rest, "", 0, fmt.Errorf("time_total %q: %v", f[1], err)
	}
	if f[0] != ":" {
		local = f[0]
	}
	return rest, local, time.Duration(secs * float64(time.Second)), nil
}

// CurlMeasured runs one request like Curl and also returns curl's own address and timing.
func (t *T) CurlMeasured(req Request) Measured {
	if t.Env == nil {
		t.Fatalf("no lab to send traffic in")
	}
	if req.Pod == "" {
		req.Namespace, req.Pod = t.Env.Namespace, t.SleepPod()
	}
	t.noteSent(req)
	m, err := t.Env.CurlMeasured(t.Context(), req)
	t.Must(err, "running curl")
	return m
}

// CurlMeasured runs curl in req's pod (which must be named) and returns the answer with curl's own
// address and timing. An error means curl could not be run, or its -w line is missing.
func (e *Env) CurlMeasured(ctx context.Context, req Request) (Measured, error) {
	start := time.Now()
	out, err := labclient.Exec(ctx, e.Config, e.Kube, req.Namespace, req.Pod, req.Container, measuredArgs(req))
	if err != nil {
		return Measured{}, err
	}
	m := Measured{Response: Response{ExitCode: out.ExitCode, Stderr: out.Stderr, Elapsed: time.Since(start)}}
	stdout, local, total, err := splitWriteOut(out.Stdout)
	if err != nil {
		return m, fmt.Errorf("reading curl's -w output (is the pod's meshlab older than -w %%{local_port}, or has it no meshlab curl?): %w; stderr: %s", err, strings.TrimSpace(out.Stderr))
	}
	m.Local, m.Total = local, total
	m.Status, m.Header, m.Body, _ = ParseCurlOutput(stdout)
	return m, nil
}

// newRequestID returns a random UUID for x-request-id.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pathLogWait bounds how long ExpectPath waits for the access-log lines: ztunnel writes its line when
// the connection closes, a moment after curl returns.
const pathLogWait = 20 * time.Second

// Observation is one request sent from a pod with a fresh x-request-id, and what the mesh's access logs
// say it did.
type Observation struct {
	Measured
	Seen PathSeen
}

// Observe sends req once from its pod (which must be named) with a fresh x-request-id and reads the
// access logs of every ztunnel, and of the waypoint the source ztunnel sent it to, until every entry
// the path needs is logged or wait has passed (correlate says how entries are matched). An error means
// the request could not be sent or the logs could not be read; a request that got no HTTP answer is an
// observation (Status 0), not an error.
func (e *Env) Observe(ctx context.Context, req Request, wait time.Duration) (Observation, error) {
	id := newRequestID()
	req.Args = append(append([]string(nil), req.Args...), "-H", "x-request-id: "+id)
	since := time.Now().Add(-2 * time.Second)
	m, err := e.CurlMeasured(ctx, req)
	m.RequestID = id
	obs := Observation{Measured: m}
	if err != nil {
		return obs, err
	}
	if m.Local == "" {
		return obs, nil // no connection was made: nothing to look for in the logs
	}
	q := pathQuery{Local: m.Local, RequestID: id}
	deadline := time.Now().Add(wait)
	for {
		zt, err := e.ZtunnelAccessLog(ctx, since)
		if err != nil {
			return obs, err
		}
		wps, err := e.waypointPods(ctx)
		if err != nil {
			return obs, err
		}
		var lines []WaypointEntry
		if out := findOut(zt, q.Local); out != nil {
			if wp, ok := wps[out.Fields["dst.addr"]]; ok {
				if lines, err = e.waypointAccessLog(ctx, wp, since); err != nil {
					return obs, err
				}
			}
		}
		obs.Seen = correlate(q, zt, wps, lines)
		if obs.Seen.complete() || time.Now().After(deadline) || ctx.Err() != nil {
			return obs, nil
		}
		time.Sleep(500 * time.Millisecond) // the poll interval; wait bounds it
	}
}

// ExpectPath sends the request once with a fresh x-request-id and records a failure unless the mesh's
// access logs show it travelled as want says. The evidence and how it is matched (see correlate):
//
//   - the source ztunnel's outbound entry whose src.addr is curl's own address, which curl reports with
//     -w %{local_ip}:%{local_port}: exact, independent of time;
//   - when that entry's dst.addr is a waypoint pod's HBONE port, that waypoint's access-log line with
//     the request id: exact; the waypoint logs the client identity it verified and the identity of the
//     destination it verified on its upstream HBONE connection;
//   - otherwise the destination ztunnel's inbound entry for the same target from the same pod IP whose
//     time falls in the outbound connection's lifetime (HBONE streams share a pooled connection, so no
//     port ties them together); it logs the client identity it verified.
//
// HBONE is always mutual TLS in ztunnel, so "over HBONE" with both identities is the mTLS check. The
// request must get an HTTP answer; on failure the message lists the facts, the lines they came from
// and nearby lines that did not match.
func (t *T) ExpectPath(what string, req Request, want PathWant) bool {
	if t.Env == nil {
		t.Fatalf("no lab to send traffic in")
	}
	if req.Pod == "" {
		req.Namespace, req.Pod = t.Env.Namespace, t.SleepPod()
	}
	t.noteSent(req)
	obs, err := t.Env.Observe(t.Context(), req, pathLogWait)
	t.Must(err, "sending the request and reading the access logs")
	if obs.Status == 0 {
		return t.expectTraffic(false, what, want.String()+" (after an HTTP answer)", obs.Response.String())
	}
	if obs.Local == "" {
		t.Fatalf("%s: curl reported no local address", what)
	}
	got, ok := CheckPath(obs.Seen, want)
	t.Logf("%s: %s", what, strings.ReplaceAll(got, "\n", "; "))
	return t.expectTraffic(ok, what, want.String(), got)
}

// ZtunnelAccessLog reads the access-log entries of every ztunnel since a time.
func (e *Env) ZtunnelAccessLog(ctx context.Context, since time.Time) ([]ZtunnelEntry, error) {
	ds, err := e.Kube.AppsV1().DaemonSets(labclient.ControlPlaneNamespace).Get(ctx, labclient.ZtunnelDaemonSet, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the ztunnel DaemonSet: %w", err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("ztunnel selector: %w", err)
	}
	pods, err := e.Kube.CoreV1().Pods(labclient.ControlPlaneNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing ztunnel pods: %w", err)
	}
	var out []ZtunnelEntry
	for _, p := range pods.Items {
		log, err := e.podLog(ctx, &p, since)
		if err != nil {
			return nil, err
		}
		out = append(out, ParseZtunnelLog(log, p.Name, p.Spec.NodeName)...)
	}
	return out, nil
}

// waypointPods maps the HBONE address (IP:15008) of every running pod of a Gateway's deployment to the
// Gateway; ingress gateways are in the map too but never receive HBONE on 15008.
func (e *Env) waypointPods(ctx context.Context) (map[string]waypointPod, error) {
	pods, err := e.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: model.LabelGatewayName})
	if err != nil {
		return nil, fmt.Errorf("listing waypoint pods: %w", err)
	}
	out := map[string]waypointPod{}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning {
			out[hboneAddr(p.Status.PodIP)] = waypointPod{Gateway: p.Namespace + "/" + p.Labels[model.LabelGatewayName], Pod: p.Namespace + "/" + p.Name}
		}
	}
	return out, nil
}

// waypointAccessLog reads a waypoint pod's request lines since a time.
func (e *Env) waypointAccessLog(ctx context.Context, wp waypointPod, since time.Time) ([]WaypointEntry, error) {
	ns, name, _ := strings.Cut(wp.Pod, "/")
	p, err := e.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading waypoint pod %s: %w", wp.Pod, err)
	}
	log, err := e.podLog(ctx, p, since)
	if err != nil {
		return nil, err
	}
	return ParseWaypointLog(log, wp.Pod), nil
}

// podLog reads a pod's log (its first container) since a time.
func (e *Env) podLog(ctx context.Context, p *corev1.Pod, since time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st := metav1.NewTime(since)
	body, err := e.Kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{SinceTime: &st}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the logs of %s/%s: %w", p.Namespace, p.Name, err)
	}
	return string(body), nil
}

// hboneAddr is where a waypoint pod takes HBONE.
func hboneAddr(ip string) string { return net.JoinHostPort(ip, "15008") }
