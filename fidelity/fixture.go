package fidelity

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// A Fixture is a set of Kubernetes YAML files and the proxies to render from them.
type Fixture struct {
	Name string `json:"name"`
	// Files are paths relative to fidelity/testdata, or "modeltest:NAME" for a file of meshlab's shared
	// fixtures (controlplane/model/modeltest/testdata).
	Files []string `json:"files"`
	// Proxies are meshlab proxy ids: waypoint/NAMESPACE/NAME, gateway/NAMESPACE/NAME, sidecar/NAMESPACE/POD, or "ztunnel" (the
	// workload API's workloads and services, which every ztunnel receives).
	Proxies []string `json:"proxies"`
}

// TestdataDir is fidelity/testdata.
func TestdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// LoadFixtures reads testdata/fixtures.yaml.
func LoadFixtures() ([]Fixture, error) {
	data, err := os.ReadFile(filepath.Join(TestdataDir(), "fixtures.yaml"))
	if err != nil {
		return nil, err
	}
	var out struct {
		Fixtures []Fixture `json:"fixtures"`
	}
	if err := yaml.UnmarshalStrict(data, &out); err != nil {
		return nil, fmt.Errorf("fixtures.yaml: %w", err)
	}
	return out.Fixtures, nil
}

// Docs reads the fixture's files and returns its documents, completed the way a cluster would complete them
// before either control plane reads them (see Complete).
func (f Fixture) Docs() ([]map[string]any, error) {
	var docs []map[string]any
	for _, name := range f.Files {
		path := filepath.Join(TestdataDir(), name)
		if rest, ok := strings.CutPrefix(name, "modeltest:"); ok {
			path = modeltest.Path(rest)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		d, err := SplitYAML(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		docs = append(docs, d...)
	}
	return Complete(docs), nil
}

// SplitYAML parses a multi-document YAML file into objects.
func SplitYAML(data []byte) ([]map[string]any, error) {
	var out []map[string]any
	for _, part := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(part))) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(part, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// JoinYAML prints objects as one multi-document YAML string.
func JoinYAML(docs []map[string]any) (string, error) {
	parts := make([]string, 0, len(docs))
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return "", err
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\n---\n"), nil
}

func str(m map[string]any, path ...string) string {
	v, _ := get(m, path...).(string)
	return v
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func strMap(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			if s, ok := val.(string); ok {
				out[k] = s
			}
		}
	}
	return out
}

// Complete adds what the cluster's own controllers would have written, identically for both control
// planes: a waypoint Gateway's status address (the Hostname of its Service, as Istio's gateway deployment
// controller writes it), a Service port's default targetPort (the API server's), a Ready condition on
// running pods, the gateway.istio.io/managed label and appProtocol hbone (on port
// 15008) on a waypoint's Service, istio-cni's ambient.istio.io/redirection
// annotation on the pods of ambient namespaces (not on waypoints, nor on pods with a sidecar), and an
// EndpointSlice for every Service with a selector (the kube-controller-manager's), unless the fixture has
// its own.
func Complete(docs []map[string]any) []map[string]any {
	ambientNS := map[string]bool{}
	for _, d := range docs {
		if d["kind"] == "Namespace" && strMap(get(d, "metadata", "labels"))["istio.io/dataplane-mode"] == "ambient" {
			ambientNS[str(d, "metadata", "name")] = true
		}
	}
	type pod struct {
		ns, name, ip, node string
		labels             map[string]string
		ports              map[string]int64 // container port names
	}
	var pods []pod
	haveSlices, waypoints := map[string]bool{}, map[string]bool{}
	for _, d := range docs {
		md, _ := d["metadata"].(map[string]any)
		switch d["kind"] {
		case "Gateway":
			if str(d, "spec", "gatewayClassName") == "istio-waypoint" {
				waypoints[str(d, "metadata", "namespace")+"/"+str(d, "metadata", "name")] = true
			}
			if str(d, "spec", "gatewayClassName") == "istio-waypoint" && get(d, "status") == nil {
				d["status"] = map[string]any{"addresses": []any{map[string]any{
					"type": "Hostname", "value": fmt.Sprintf("%s.%s.svc.cluster.local", md["name"], md["namespace"]),
				}}}
			}
		case "Pod":
			labels, annotations := strMap(get(d, "metadata", "labels")), strMap(get(d, "metadata", "annotations"))
			mode, hasMode := labels["istio.io/dataplane-mode"]
			captured := (ambientNS[str(d, "metadata", "namespace")] && !hasMode) || mode == "ambient"
			if captured && labels["gateway.networking.k8s.io/gateway-name"] == "" && annotations["sidecar.istio.io/status"] == "" {
				if md["annotations"] == nil {
					md["annotations"] = map[string]any{}
				}
				md["annotations"].(map[string]any)["ambient.istio.io/redirection"] = "enabled"
			}
			status, _ := d["status"].(map[string]any)
			if status == nil {
				continue
			}
			if status["phase"] == "Running" && status["conditions"] == nil {
				status["conditions"] = []any{map[string]any{"type": "Ready", "status": "True"}}
			}
			ip, _ := status["podIP"].(string)
			if ip != "" && status["podIPs"] == nil {
				status["podIPs"] = []any{map[string]any{"ip": ip}}
			}
			p := pod{ns: str(d, "metadata", "namespace"), name: str(d, "metadata", "name"), ip: ip, node: str(d, "spec", "nodeName"),
				labels: strMap(get(d, "metadata", "labels")), ports: map[string]int64{}}
			if cs, ok := get(d, "spec", "containers").([]any); ok {
				for _, c := range cs {
					if ps, ok := get(c.(map[string]any), "ports").([]any); ok {
						for _, cp := range ps {
							cpm := cp.(map[string]any)
							if n, ok := cpm["name"].(string); ok {
								p.ports[n] = toInt(cpm["containerPort"])
							}
						}
					}
				}
			}
			if ip != "" {
				pods = append(pods, p)
			}
		case "EndpointSlice":
			haveSlices[str(d, "metadata", "namespace")+"/"+strMap(get(d, "metadata", "labels"))["kubernetes.io/service-name"]] = true
		}
	}
	// The API server defaults a Service port's targetPort to its port.
	for _, d := range docs {
		if d["kind"] != "Service" {
			continue
		}
		if ports, ok := get(d, "spec", "ports").([]any); ok {
			for _, p := range ports {
				if pm := p.(map[string]any); pm["targetPort"] == nil {
					pm["targetPort"] = pm["port"]
				}
			}
		}
	}
	// The waypoint controller's Service for a waypoint is labelled gateway.istio.io/managed and names its
	// HBONE port with appProtocol hbone.
	for _, d := range docs {
		if d["kind"] != "Service" || !waypoints[str(d, "metadata", "namespace")+"/"+str(d, "metadata", "name")] {
			continue
		}
		md := d["metadata"].(map[string]any)
		if md["labels"] == nil {
			md["labels"] = map[string]any{}
		}
		if l := md["labels"].(map[string]any); l["gateway.istio.io/managed"] == nil {
			l["gateway.istio.io/managed"] = "istio.io-mesh-controller"
		}
		if ports, ok := get(d, "spec", "ports").([]any); ok {
			for _, p := range ports {
				if pm := p.(map[string]any); toInt(pm["port"]) == 15008 && pm["appProtocol"] == nil {
					pm["appProtocol"] = "hbone"
				}
			}
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].ns+"/"+pods[i].name < pods[j].ns+"/"+pods[j].name })
	var slices []map[string]any
	for _, d := range docs {
		if d["kind"] != "Service" {
			continue
		}
		ns, name := str(d, "metadata", "namespace"), str(d, "metadata", "name")
		sel := strMap(get(d, "spec", "selector"))
		if len(sel) == 0 || haveSlices[ns+"/"+name] {
			continue
		}
		svcPorts, _ := get(d, "spec", "ports").([]any)
		var eps []any
		var slicePorts []any
		for i, sp := range svcPorts {
			spm := sp.(map[string]any)
			port := map[string]any{"name": spm["name"], "protocol": "TCP"}
			if port["name"] == nil {
				port["name"] = ""
			}
			if ap, ok := spm["appProtocol"]; ok {
				port["appProtocol"] = ap
			}
			slicePorts = append(slicePorts, port)
			_ = i
		}
		for _, p := range pods {
			if p.ns != ns || !selects(sel, p.labels) {
				continue
			}
			ep := map[string]any{
				"addresses":  []any{p.ip},
				"conditions": map[string]any{"ready": true, "serving": true, "terminating": false},
				"targetRef":  map[string]any{"kind": "Pod", "name": p.name, "namespace": p.ns},
			}
			if p.node != "" {
				ep["nodeName"] = p.node
			}
			eps = append(eps, ep)
		}
		// One slice per distinct target port set: the target port of each service port for these pods.
		for i, sp := range svcPorts {
			spm := sp.(map[string]any)
			target := spm["targetPort"]
			var num int64
			switch t := target.(type) {
			case nil:
				num = toInt(spm["port"])
			case string:
				for _, p := range pods {
					if p.ns == ns && selects(sel, p.labels) && p.ports[t] != 0 {
						num = p.ports[t]
						break
					}
				}
			default:
				num = toInt(t)
			}
			slicePorts[i].(map[string]any)["port"] = num
		}
		if eps == nil {
			eps = []any{}
		}
		slices = append(slices, map[string]any{
			"apiVersion":  "discovery.k8s.io/v1",
			"kind":        "EndpointSlice",
			"metadata":    map[string]any{"name": name + "-fidelity", "namespace": ns, "labels": map[string]any{"kubernetes.io/service-name": name}},
			"addressType": "IPv4",
			"endpoints":   eps,
			"ports":       slicePorts,
		})
	}
	return append(docs, slices...)
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return 0
}
