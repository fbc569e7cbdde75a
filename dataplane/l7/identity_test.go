package l7

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// TestEndpointIdentity: a connect_originate endpoint's tunnel.identity becomes the identity its HBONE
// server must present; one that is not a SPIFFE ID fails the config (a NACK) rather than being dropped,
// which would leave the endpoint checked against the trust domain only.
func TestEndpointIdentity(t *testing.T) {
	const host, id = "10.244.1.7:9080", "spiffe://cluster.local/ns/default/sa/reviews"
	build := func(identity string) (*Table, error) {
		cfg := l7test.Config{
			Clusters:  []*clusterv3.Cluster{l7test.EDSCluster("c")},
			Endpoints: []*endpointv3.ClusterLoadAssignment{l7test.Endpoints("c", []string{host, "10.244.1.8:9080"}, nil)},
		}
		return Build(Config(l7test.WithIdentities(cfg, map[string]string{host: identity})))
	}
	table, err := build(id)
	if err != nil {
		t.Fatal(err)
	}
	hosts := table.Clusters["c"].Hosts
	if len(hosts) != 2 || hosts[0].Identity != id || hosts[1].Identity != "" {
		t.Errorf("hosts = %+v, want the first with identity %s, the second without", hosts, id)
	}
	_, err = build("cluster.local/ns/default/sa/reviews")
	if err == nil || !strings.Contains(err.Error(), `metadata tunnel.identity: "cluster.local/ns/default/sa/reviews" is not a SPIFFE ID`) {
		t.Errorf("Build with a bad identity = %v, want a tunnel.identity error", err)
	}
}
