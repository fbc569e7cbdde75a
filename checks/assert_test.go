package checks

import "testing"

func TestClusterAlias(t *testing.T) {
	tests := []struct{ name, ns, want string }{
		{"inbound-vip|80|http|echo-v1.team.svc.cluster.local", "team", "echo-v1"},
		{"inbound-vip|9080|http/v2|reviews.default.svc.cluster.local", "default", "reviews/v2"},
		{"outbound|9080|v1|reviews.default.svc.cluster.local", "default", "reviews/v1"},
		{"outbound|9080||ratings.other.svc.cluster.local", "default", "ratings.other"},
		{"main_internal", "default", ""},
	}
	for _, tc := range tests {
		if got := clusterAlias(tc.name, tc.ns); got != tc.want {
			t.Errorf("clusterAlias(%q, %q) = %q, want %q", tc.name, tc.ns, got, tc.want)
		}
	}
}

func TestParseBudgets(t *testing.T) {
	b, err := parseBudgets("p50=20ms,p99.9=1s")
	if err != nil || len(b) != 2 || b[0.5].String() != "20ms" || b[0.999].String() != "1s" {
		t.Fatalf("got %v, %v", b, err)
	}
	for _, bad := range []string{"50=20ms", "p50", "p100=1s", "p50=soon"} {
		if _, err := parseBudgets(bad); err == nil {
			t.Errorf("parseBudgets(%q): no error", bad)
		}
	}
}
