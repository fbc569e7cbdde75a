package model_test

import (
	"testing"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// TestPolicyFor: a cluster's traffic policy is merged as istiod merges it. In modeltest.ReviewsDRPolicy the
// rule's policy (ROUND_ROBIN, a 3s connect timeout) is replaced whole by its port-level setting for 9080
// (LEAST_REQUEST, no connection pool); a subset's parts replace the matching parts only; on another port
// the rule's own policy applies.
func TestPolicyFor(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsDRPolicy)
	dr := snap.DestinationRule("reviews.default.svc.cluster.local")
	if dr == nil {
		t.Fatal("no DestinationRule for reviews")
	}
	for _, tc := range []struct {
		port          uint32
		subset        string
		lb            string
		connectPool   bool
		hashed, outlr bool
	}{
		{9080, "", "LEAST_REQUEST", false, false, false},
		{9080, "hashed", "UNSPECIFIED", false, true, false}, // the subset's loadBalancer (a hash only) replaces the port's
		{9080, "limited", "LEAST_REQUEST", true, false, false},
		{9080, "outlier", "LEAST_REQUEST", false, false, true},
		{9090, "", "ROUND_ROBIN", true, false, false},
		{9090, "limited", "ROUND_ROBIN", true, false, false},
	} {
		p := dr.PolicyFor(tc.port, tc.subset)
		lb := p.GetLoadBalancer().GetSimple().String()
		if got := p.GetLoadBalancer().GetConsistentHash() != nil; got != tc.hashed {
			t.Errorf("%d/%s: consistent hash %v, want %v", tc.port, tc.subset, got, tc.hashed)
		}
		if lb != tc.lb {
			t.Errorf("%d/%s: load balancer %s, want %s", tc.port, tc.subset, lb, tc.lb)
		}
		if got := p.GetConnectionPool() != nil; got != tc.connectPool {
			t.Errorf("%d/%s: connection pool %v, want %v", tc.port, tc.subset, got, tc.connectPool)
		}
		if got := p.GetOutlierDetection() != nil; got != tc.outlr {
			t.Errorf("%d/%s: outlier detection %v, want %v", tc.port, tc.subset, got, tc.outlr)
		}
	}
	if got := dr.PolicyFor(9090, "limited").GetConnectionPool().GetTcp().GetMaxConnections(); got != 1 {
		t.Errorf("subset limited on 9090: maxConnections %d, want the subset's 1", got)
	}
	if got := dr.HashFor(0, "hashed").GetHttpHeaderName(); got != "x-user" {
		t.Errorf("HashFor(hashed) = %q, want x-user", got)
	}
	if h := dr.HashFor(0, "limited"); h != nil {
		t.Errorf("HashFor(limited) = %v, want none", h)
	}
}
