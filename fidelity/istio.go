package fidelity

import (
	"time"

	"istio.io/api/label"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/features"
	istiomodel "istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
)

// EnableAmbient turns on Istio's ambient features as PILOT_ENABLE_AMBIENT=true does in istiod (the flags
// derived from it are read at init, before any test code runs, so they are set here to the values they take
// with ambient enabled).
func EnableAmbient() {
	features.EnableAmbient = true
	features.EnableAmbientWaypoints = true
	features.EnableHBONESend = true
	features.EnableSidecarHBONEListening = true
	features.EnableIngressWaypointRouting = true
}

// Istio is Istio's side of a fixture: pilot's own FakeDiscoveryServer fed the same YAML, as Istio's
// waypoint tests feed it (as Istio config and as Kubernetes objects: the ambient index reads the latter).
type Istio struct {
	S *xds.FakeDiscoveryServer
}

// NewIstio starts Istio's discovery server on the fixture's YAML. The Istio config is parsed here rather
// than passed as ConfigString so that each object gets the domain suffix istiod's CRD client gives it
// (config.Meta.Domain, which resolves short hosts such as "reviews" to reviews.NS.svc.cluster.local).
func NewIstio(t test.Failer, yamlText string) *Istio {
	configs, _, err := crd.ParseInputs(yamlText)
	if err != nil {
		t.Fatalf("Istio cannot parse the fixture: %v", err)
	}
	for i := range configs {
		configs[i].Domain = "cluster.local"
		if configs[i].CreationTimestamp.IsZero() {
			configs[i].CreationTimestamp = time.Unix(1_700_000_000, 0)
		}
	}
	return &Istio{S: xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		Configs:                configs,
		KubernetesObjectString: yamlText,
	})}
}

// WaypointProxy is the proxy istiod sees when a waypoint's Envoy connects: its pod's IP and the
// Gateway's labels, in the Gateway's namespace.
func (i *Istio) WaypointProxy(namespace, name, podName string, ips []string) *istiomodel.Proxy {
	return i.S.SetupProxy(&istiomodel.Proxy{
		Type:            istiomodel.Waypoint,
		ID:              podName + "." + namespace,
		ConfigNamespace: namespace,
		Labels: map[string]string{
			label.IoK8sNetworkingGatewayGatewayName.Name: name,
			label.GatewayManaged.Name:                    constants.ManagedGatewayMeshControllerLabel,
		},
		Metadata: &istiomodel.NodeMetadata{Labels: map[string]string{
			label.IoK8sNetworkingGatewayGatewayName.Name: name,
			label.GatewayManaged.Name:                    constants.ManagedGatewayMeshControllerLabel,
		}},
		IPAddresses: ips,
	})
}

// GatewayProxy is the proxy istiod sees when an ingress gateway's Envoy connects (Istio's router type): its
// pod's IP and the labels Istio's gateway deployment gives its pods, in the Gateway's namespace.
func (i *Istio) GatewayProxy(namespace, name, podName string, ips []string) *istiomodel.Proxy {
	labels := map[string]string{
		label.IoK8sNetworkingGatewayGatewayName.Name: name,
		label.GatewayManaged.Name:                    constants.ManagedGatewayControllerLabel,
	}
	return i.S.SetupProxy(&istiomodel.Proxy{
		Type:            istiomodel.Router,
		ID:              podName + "." + namespace,
		ConfigNamespace: namespace,
		Labels:          labels,
		Metadata:        &istiomodel.NodeMetadata{Labels: labels, Namespace: namespace},
		IPAddresses:     ips,
	})
}

// SidecarProxy is the proxy istiod sees when a pod's injected sidecar connects.
func (i *Istio) SidecarProxy(namespace, podName, serviceAccount string, ips []string, labels map[string]string) *istiomodel.Proxy {
	return i.S.SetupProxy(&istiomodel.Proxy{
		Type:            istiomodel.SidecarProxy,
		ID:              podName + "." + namespace,
		ConfigNamespace: namespace,
		Labels:          labels,
		Metadata:        &istiomodel.NodeMetadata{Labels: labels, ServiceAccount: serviceAccount, Namespace: namespace},
		IPAddresses:     ips,
	})
}

// Envoy generates the proxy's four resource types with Istio's ConfigGenerator (endpoints through its
// EndpointBuilder for every EDS cluster, as istiod's EDS does).
func (i *Istio) Envoy(p *istiomodel.Proxy) *Envoy {
	l := i.S.Listeners(p)
	c := i.S.Clusters(p)
	return &Envoy{Listeners: l, Clusters: c, Routes: i.S.RoutesFromListeners(p, l), Endpoints: i.S.Endpoints(p)}
}

// Policies is every L4 policy Istio's workload xDS can send a ztunnel (istio.security.Authorization).
func (i *Istio) Policies() []*security.Authorization {
	var out []*security.Authorization
	for _, p := range i.S.AmbientIndex.Policies(nil) {
		out = append(out, p.Authorization)
	}
	return out
}

// Addresses is what Istio's workload xDS sends a ztunnel: every workload and service of the ambient index.
func (i *Istio) Addresses() []*workloadapi.Address {
	var out []*workloadapi.Address
	for _, a := range i.S.AmbientIndex.All() {
		out = append(out, a.Address)
	}
	return out
}
