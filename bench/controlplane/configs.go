package controlplane

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// ProxyConfig is what one proxy receives, measured.
type ProxyConfig struct {
	Proxy model.Proxy
	// Units is the number of config units: the services whose configuration the proxy holds (the distinct
	// service FQDNs its clusters are built for, outbound|PORT|SUBSET|FQDN or inbound-vip|PORT|PROTO|FQDN).
	Units int
	// OwnNamespaceUnits counts only the services in the proxy's own namespace.
	OwnNamespaceUnits int
	// Bytes is the serialized size (proto.Size) of every listener, route, cluster and endpoint resource.
	Bytes int
	// Resources counts those resources.
	Resources int
}

// MeasureProxy generates the Envoy config of a waypoint or sidecar proxy and measures it.
func MeasureProxy(s *model.Snapshot, p model.Proxy) (ProxyConfig, error) {
	cfg, err := configgen.Envoy(s, p)
	if err != nil {
		return ProxyConfig{}, fmt.Errorf("generating for %s: %w", p.ID(), err)
	}
	return Measure(p, cfg), nil
}

// Measure counts the config units and bytes of one proxy's generated config.
func Measure(p model.Proxy, cfg *configgen.Config) ProxyConfig {
	out := ProxyConfig{Proxy: p}
	services := map[string]bool{}
	for _, c := range cfg.Clusters {
		if fqdn, ok := serviceOfCluster(c.GetName()); ok && !services[fqdn] {
			services[fqdn] = true
			out.Units++
			if strings.HasSuffix(fqdn, "."+p.Namespace+".svc."+model.ClusterDomain) {
				out.OwnNamespaceUnits++
			}
		}
		out.Bytes += proto.Size(c)
	}
	for _, l := range cfg.Listeners {
		out.Bytes += proto.Size(l)
	}
	for _, r := range cfg.Routes {
		out.Bytes += proto.Size(r)
	}
	for _, e := range cfg.Endpoints {
		out.Bytes += proto.Size(e)
	}
	out.Resources = len(cfg.Listeners) + len(cfg.Routes) + len(cfg.Clusters) + len(cfg.Endpoints)
	return out
}

// serviceOfCluster returns the service FQDN of a per-service cluster name; infrastructure clusters
// (connect_originate, PassthroughCluster, inbound|PORT||, ...) name no service.
func serviceOfCluster(name string) (string, bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || (parts[0] != "outbound" && parts[0] != "inbound-vip") || parts[3] == "" {
		return "", false
	}
	return parts[3], true
}

// Distribution compares the config distributed in the sidecar model (a sidecar in every application pod)
// with the waypoint model (every replica of every namespace waypoint), for one snapshot.
type Distribution struct {
	Sidecars         int
	WaypointReplicas int
	// SidecarConfigs and WaypointConfigs are the config units summed over every proxy of the model.
	SidecarConfigs  int
	WaypointConfigs int
	// SidecarConfigsOwnNamespace counts each sidecar's units for its own namespace only: what a sidecar
	// scoped to its namespace (Istio's Sidecar resource, egress "./*") would hold.
	SidecarConfigsOwnNamespace int
	// SidecarBytes and WaypointBytes are serialized bytes summed over every proxy of the model.
	SidecarBytes  int64
	WaypointBytes int64
}

// Distribute generates the config of every sidecar (one per application pod; waypoint pods have none) and
// of every waypoint replica (replicas of one Gateway receive the same config, generated once and counted
// once per replica, as they would each receive it over their own stream).
func Distribute(s *model.Snapshot) (Distribution, error) {
	var d Distribution
	for _, wl := range s.Workloads() {
		if wl.Labels[model.LabelGatewayName] != "" {
			continue
		}
		pc, err := MeasureProxy(s, model.Proxy{Kind: model.KindSidecar, Namespace: wl.Namespace, Name: wl.Name})
		if err != nil {
			return Distribution{}, err
		}
		d.Sidecars++
		d.SidecarConfigs += pc.Units
		d.SidecarConfigsOwnNamespace += pc.OwnNamespaceUnits
		d.SidecarBytes += int64(pc.Bytes)
	}
	replicas := map[string]int{}
	for _, wl := range s.Workloads() {
		if gw := wl.Labels[model.LabelGatewayName]; gw != "" {
			replicas[wl.Namespace+"/"+gw]++
		}
	}
	for _, w := range s.Waypoints() {
		n := replicas[w.Namespace+"/"+w.Name]
		if n == 0 {
			continue // no pods: nobody receives this waypoint's config
		}
		pc, err := MeasureProxy(s, model.Proxy{Kind: model.KindWaypoint, Namespace: w.Namespace, Name: w.Name})
		if err != nil {
			return Distribution{}, err
		}
		d.WaypointReplicas += n
		d.WaypointConfigs += n * pc.Units
		d.WaypointBytes += int64(n * pc.Bytes)
	}
	return d, nil
}
