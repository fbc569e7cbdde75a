package suite

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/scenarios"
)

// hbone-capture: sleep -> productpage is captured by ztunnel and carried over HBONE (port 15008, mTLS)
// with sleep's and productpage's SPIFFE identities on both ends, as both ztunnels' access logs show; a
// pod in a namespace that is not enrolled is not captured; and a client without a mesh certificate
// cannot complete a TLS handshake with 15008.
func hboneCapture() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "hbone-capture",
		Description: "sleep -> productpage over HBONE with mTLS identities; no capture outside the mesh; 15008 needs a mesh certificate",
		Requires: func(t *scenarios.T) {
			requireMesh(t)
			t.RequireWorkload(bookinfoNS, "productpage-v1")
		},
		Setup: func(t *scenarios.T) {
			t.Apply(fmt.Sprintf(plainClientYAML, t.MeshlabImage()))
		},
		Wait: func(t *scenarios.T) {
			t.WaitPodsReady(plainNS, "app=plain-client", 60*time.Second)
			t.WaitConverged() // ztunnels learn about the new pod even though it is not captured
		},
		Check: func(t *scenarios.T) {
			sleep := t.Pods(bookinfoNS, "app=sleep")[0]
			pp := t.Pods(bookinfoNS, "app=productpage")[0]
			plain := t.Pods(plainNS, "app=plain-client")[0]
			t.Involve(labclient.ControlPlaneNamespace, "")

			t.Phase("captured", func() {
				since := time.Now().Add(-2 * time.Second)
				rs := t.CurlN(scenarios.Request{URL: "http://productpage:9080/health"}, 3, 1)
				expectAll(t, "sleep -> productpage answers", rs, scenarios.ByStatus, "HTTP 200")
				src := map[string]string{"src.identity": spiffe(bookinfoNS, "sleep"), "dst.identity": spiffe(bookinfoNS, "bookinfo-productpage"), "protocol": "HBONE"}
				out := waitAccessLog(t, sleep.Spec.NodeName, since, "outbound from "+sleep.Status.PodIP+" to "+pp.Status.PodIP+":9080", func(e accessEntry) bool {
					return e["direction"] == "outbound" && strings.HasPrefix(e["src.addr"], sleep.Status.PodIP+":") && e["dst.hbone_addr"] == pp.Status.PodIP+":9080"
				})
				expectFields(t, "the source ztunnel's access log shows HBONE with both identities", out, src)
				t.Expect(strings.HasSuffix(out["dst.addr"], ":15008"), "the tunnel goes to port 15008", "dst.addr <productpage>:15008", out["dst.addr"])
				in := waitAccessLog(t, pp.Spec.NodeName, since, "inbound to "+pp.Status.PodIP+" from "+sleep.Status.PodIP, func(e accessEntry) bool {
					return e["direction"] == "inbound" && strings.HasPrefix(e["src.addr"], sleep.Status.PodIP+":") && e["protocol"] == "HBONE"
				})
				expectFields(t, "the destination ztunnel's access log shows HBONE with both identities", in, src)
			})

			t.Phase("not-enrolled", func() {
				since := time.Now().Add(-2 * time.Second)
				r := t.Curl(scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: "http://productpage." + bookinfoNS + ":9080/health"})
				t.Expect(r.OK(), "a pod outside the mesh still reaches productpage", "HTTP 200", r)
				var captured []string
				for _, e := range accessLog(t, "", since) {
					if e["direction"] == "outbound" && strings.HasPrefix(e["src.addr"], plain.Status.PodIP+":") {
						captured = append(captured, e.String())
					}
				}
				t.ExpectEqual("no ztunnel captured the outbound traffic of "+plainNS+"/"+plain.Name, []string(nil), captured)
			})

			t.Phase("no-mesh-cert", func() {
				r := t.Curl(scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: "https://" + pp.Status.PodIP + ":15008/", Args: []string{"-k"}, MaxTime: 5 * time.Second})
				failedTLS := r.Status == 0 && (r.ExitCode == 35 || r.ExitCode == 52 || r.ExitCode == 56)
				t.Expect(failedTLS, "a client without a mesh certificate fails the TLS handshake on "+pp.Status.PodIP+":15008",
					"curl exit 35, 52 or 56 (handshake refused: client certificate required)", r)
			})
		},
	}
}

const plainNS = "meshlab-scenario-plain"

// plainClientYAML is a namespace without the ambient label and a client pod in it (%s: meshlab's image).
var plainClientYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: meshlab-scenario-plain
---
apiVersion: v1
kind: Pod
metadata:
  name: plain-client
  namespace: meshlab-scenario-plain
  labels: {app: plain-client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: sleep
    image: %s
    imagePullPolicy: IfNotPresent
    args: [sleep]
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
`

// accessEntry is one ztunnel access-log line as key/value pairs.
type accessEntry map[string]string

func (e accessEntry) String() string {
	var parts []string
	for _, k := range []string{"direction", "protocol", "src.addr", "src.identity", "dst.addr", "dst.hbone_addr", "dst.identity", "error"} {
		if v, ok := e[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// parseAccessLog reads ztunnel's access-log lines (`... access connection complete k="v" k=v ...`),
// ignoring every other line.
func parseAccessLog(log string) []accessEntry {
	var out []accessEntry
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, "connection complete")
		if !ok || !strings.Contains(line, "access") {
			continue
		}
		e := accessEntry{}
		for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
			k, after, ok := strings.Cut(rest, "=")
			if !ok {
				break
			}
			var v string
			if strings.HasPrefix(after, `"`) {
				end := 1
				for end < len(after) && (after[end] != '"' || after[end-1] == '\\') {
					end++
				}
				v = strings.ReplaceAll(after[1:min(end, len(after))], `\"`, `"`)
				rest = after[min(end+1, len(after)):]
			} else {
				v, rest, _ = strings.Cut(after, " ")
			}
			e[k] = v
		}
		out = append(out, e)
	}
	return out
}

// accessLog reads the access-log entries of the ztunnel on node (every ztunnel when node is empty) since
// a time.
func accessLog(t *scenarios.T, node string, since time.Time) []accessEntry {
	ds, err := t.Env.Kube.AppsV1().DaemonSets(labclient.ControlPlaneNamespace).Get(t.Context(), labclient.ZtunnelDaemonSet, metav1.GetOptions{})
	t.Must(err, "reading the ztunnel DaemonSet")
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	t.Must(err, "ztunnel selector")
	pods, err := t.Env.Kube.CoreV1().Pods(labclient.ControlPlaneNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: sel.String()})
	t.Must(err, "listing ztunnel pods")
	var out []accessEntry
	st := metav1.NewTime(since)
	for _, p := range pods.Items {
		if node != "" && p.Spec.NodeName != node {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		body, err := t.Env.Kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{SinceTime: &st}).DoRaw(ctx)
		cancel()
		t.Must(err, "reading the logs of "+p.Name)
		out = append(out, parseAccessLog(string(body))...)
	}
	return out
}

// waitAccessLog polls the node's ztunnel log until an entry matches (access lines are written when a
// connection closes, a moment after curl returns) and returns it; the deadline is a failure.
func waitAccessLog(t *scenarios.T, node string, since time.Time, what string, match func(accessEntry) bool) accessEntry {
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries := accessLog(t, node, since)
		for _, e := range entries {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			var seen []string
			for _, e := range entries {
				seen = append(seen, e.String())
			}
			t.Expect(false, "the ztunnel on node "+node+" logs the connection ("+what+")", "an access-log entry for it", strings.Join(seen, "\n"))
			t.FailNow()
		}
		time.Sleep(500 * time.Millisecond) // the poll interval; the deadline above bounds it
	}
}

// expectFields checks fields of an access-log entry.
func expectFields(t *scenarios.T, what string, e accessEntry, want map[string]string) {
	got := map[string]string{}
	for k := range want {
		got[k] = e[k]
	}
	t.ExpectEqual(what, want, got)
}
