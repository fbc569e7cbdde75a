package checks

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/scenarios"
)

// DefaultReadyTimeout bounds one `ready`.
const DefaultReadyTimeout = 3 * time.Minute

// live acts on the running lab through the scenario's T: applies are undone at teardown, config is read
// from the control plane once every proxy has acknowledged it.
type live struct {
	timeout      time.Duration // bounds each convergence wait (0: scenarios.DefaultConvergeTimeout)
	lastChange   time.Time     // when the last apply or delete was made
	converged    time.Duration // how long it took to be acknowledged
	settledSince time.Time     // lastChange when WaitSettled last succeeded
	// gateways are the proxies of the waypoints and ingress gateways the file applied and has not deleted:
	// traffic waits for them, since ztunnel may send to a waypoint before its proxy has its config.
	gateways map[string]scenarios.ProxySet
}

func (l *live) setup(t *scenarios.T, ns, dataplane string) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(ns)
	switch dataplane {
	case DataplaneAmbient:
		u.SetLabels(map[string]string{"istio.io/dataplane-mode": "ambient"})
	case DataplaneSidecar:
		u.SetLabels(map[string]string{"istio-injection": "enabled"})
	}
	t.ApplyObjects(u) // deleted at teardown, after everything applied in it
	t.Involve(ns, "")
	l.lastChange = time.Now()
}

func (l *live) apply(t *scenarios.T, _, _ string, objs []*unstructured.Unstructured) {
	l.lastChange = time.Now()
	t.ApplyObjects(objs...)
	for _, u := range objs {
		if set, ok := gatewayProxy(u); ok {
			if l.gateways == nil {
				l.gateways = map[string]scenarios.ProxySet{}
			}
			l.gateways[set.String()] = set
		}
	}
	l.settle(t)
}

// gatewayProxy is the proxy a Gateway of class istio-waypoint or istio runs as.
func gatewayProxy(u *unstructured.Unstructured) (scenarios.ProxySet, bool) {
	if u.GetKind() != "Gateway" || u.GroupVersionKind().Group != "gateway.networking.k8s.io" {
		return scenarios.ProxySet{}, false
	}
	class, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName")
	switch class {
	case "istio-waypoint":
		return scenarios.ProxySet{Kind: xds.KindWaypoint, Namespace: u.GetNamespace(), Name: u.GetName()}, true
	case "istio":
		return scenarios.ProxySet{Kind: xds.KindGateway, Namespace: u.GetNamespace(), Name: u.GetName()}, true
	}
	return scenarios.ProxySet{}, false
}

func (l *live) beforeTraffic(t *scenarios.T) {
	for _, set := range l.gateways {
		l.waitConnected(t, set)
	}
	l.settle(t)
}

func (l *live) remove(t *scenarios.T, objs []*unstructured.Unstructured) {
	l.lastChange = time.Now()
	for _, u := range objs {
		if set, ok := gatewayProxy(u); ok {
			delete(l.gateways, set.String())
		}
	}
	for _, u := range objs {
		doc, err := u.MarshalJSON()
		t.Must(err, "encoding "+u.GetName())
		t.Delete(string(doc))
	}
	l.settle(t)
}

// settle waits until every proxy has acknowledged the last change, once per change.
func (l *live) settle(t *scenarios.T) {
	if !l.settledSince.IsZero() && l.settledSince.Equal(l.lastChange) {
		return
	}
	d, err := t.WaitSettled(l.lastChange, scenarios.SettleQuiet, l.convergeTimeout())
	if err != nil {
		t.Abortf("the lab never converged: waiting for every proxy to acknowledge the change: %v", err)
	}
	l.converged, l.settledSince = d, l.lastChange
	t.Logf("every proxy acknowledged the change %s after it", d.Round(time.Millisecond))
}

func (l *live) dump(t *scenarios.T, p proxyRef) *tables.Dump {
	kind := xds.KindWaypoint
	if p.Kind == proxySidecar {
		kind = xds.KindSidecar
	}
	set := scenarios.ProxySet{Kind: kind, Namespace: p.Namespace, Name: p.Name}
	l.waitConnected(t, set)
	l.settle(t)
	return t.ProxyDump(set)
}

// waitConnected waits until a proxy of set is connected and in sync: a waypoint the file just declared
// starts after its Gateway is applied, and settling only waits for proxies already connected.
func (l *live) waitConnected(t *scenarios.T, set scenarios.ProxySet) {
	ctx, cancel := context.WithTimeout(t.Context(), l.convergeTimeout())
	defer cancel()
	seen := "no such proxy connected"
	for {
		st, err := t.Env.Syncz(ctx)
		if err == nil {
			for _, p := range st.Proxies {
				if !set.Matches(p) {
					continue
				}
				synced := len(p.Types) > 0
				for _, ty := range p.Types {
					synced = synced && ty.Synced()
				}
				if synced {
					if p.ConnectedAt.After(l.settledSince) {
						l.settledSince = time.Time{} // connected since the last settle: settle again
					}
					return
				}
				seen = p.ID + " connected, not in sync yet"
			}
		} else {
			seen = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Abortf("the lab never converged: %s was not connected and in sync with the control plane within %s (seen: %s)%s", set, l.convergeTimeout(), seen, problemSuffix(t, set))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func problemSuffix(t *scenarios.T, set scenarios.ProxySet) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
	defer cancel()
	if why := scenarios.GatewayProblem(ctx, t.Env.Kube, set); why != "" {
		return "; " + why
	}
	return ""
}

func (l *live) podIPs(t *scenarios.T, ns, selector string) []string {
	var out []string
	for _, p := range t.Pods(ns, selector) {
		if p.Status.PodIP != "" {
			out = append(out, p.Status.PodIP)
		}
	}
	sort.Strings(out)
	return out
}

// ready waits until the Deployment's rollout is complete: every replica updated and available.
func (l *live) ready(t *scenarios.T, ns, name string, timeout time.Duration) {
	if t.Env == nil {
		t.Fatalf("no lab to wait in")
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var seen string
	for {
		d, err := t.Env.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			st := d.Status
			if st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want {
				t.Logf("deploy/%s ready (%d/%d)", name, st.AvailableReplicas, want)
				return
			}
			seen = fmt.Sprintf("%d of %d replicas updated, %d available", st.UpdatedReplicas, want, st.AvailableReplicas)
		} else {
			seen = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Abortf("the lab never converged: deploy/%s in %s did not roll out within %s: %s (want every replica updated and available)", name, ns, timeout, seen)
		case <-time.After(time.Second):
		}
	}
}

func (l *live) convergeTimeout() time.Duration {
	if l.timeout > 0 {
		return l.timeout
	}
	return scenarios.DefaultConvergeTimeout
}

func (l *live) convergence(t *scenarios.T) time.Duration {
	l.settle(t)
	return l.converged
}

// podOf returns a running pod of a Deployment (its selector's pods), for traffic commands' -from.
func podOf(t *scenarios.T, ns, deploy string) string {
	d, err := t.Env.Kube.AppsV1().Deployments(ns).Get(t.Context(), deploy, metav1.GetOptions{})
	t.Must(err, "reading deploy/"+deploy)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	t.Must(err, "reading the selector of deploy/"+deploy)
	pods := t.Pods(ns, sel.String())
	if len(pods) == 0 {
		t.Fatalf("deploy/%s in %s has no running pod to send from", deploy, ns)
	}
	return pods[0].Name
}

// ingressAddress is where a request from this machine enters the mesh through the ingress Gateway via
// (NAME in ns, or NS/NAME): a node's address and the node port of the gateway Service's port for url.
// kind's nodes are containers on this machine, so their addresses are reachable from it.
func ingressAddress(t *scenarios.T, ns, via, rawURL string) string {
	if before, after, ok := strings.Cut(via, "/"); ok {
		ns, via = before, after
	}
	port := 80
	if u, err := url.Parse(rawURL); err == nil && strings.Contains(rawURL, "://") {
		if u.Scheme == "https" {
			port = 443
		}
		if p, err := strconv.Atoi(u.Port()); err == nil {
			port = p
		}
	} else if _, p, err := net.SplitHostPort(strings.SplitN(rawURL, "/", 2)[0]); err == nil {
		port, _ = strconv.Atoi(p)
	}
	name := model.GatewayDeploymentName(via)
	svc, err := t.Env.Kube.CoreV1().Services(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("-via %s: the ingress gateway's Service %s/%s: %v", via, ns, name, err)
	}
	nodePort := int32(0)
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port {
			nodePort = p.NodePort
		}
	}
	if nodePort == 0 {
		t.Fatalf("-via %s: Service %s/%s (type %s) has no node port for port %d: the Gateway needs a listener on %d and a LoadBalancer or NodePort Service (networking.istio.io/service-type)",
			via, ns, name, svc.Spec.Type, port, port)
	}
	nodes, err := t.Env.Kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	t.Must(err, "listing the nodes")
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return net.JoinHostPort(a.Address, strconv.Itoa(int(nodePort)))
			}
		}
	}
	t.Fatalf("-via %s: no node has an internal IP", via)
	return ""
}
