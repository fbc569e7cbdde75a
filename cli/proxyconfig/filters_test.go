package proxyconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/internal/golden"
	"github.com/meshlab/meshlab/internal/istioctltest"
)

const (
	istioDump     = "testdata/istio-waypoint-config_dump.json"
	clustersJSON  = "testdata/clusters.json"
	httpbinInVIP  = "inbound-vip|8000|http|httpbin.default.svc.cluster.local"
	reviewsOutbnd = "outbound|9080||reviews.default.svc.cluster.local"
)

// filterCases are istioctl's filters, each on a file istioctl reads the same way.
var filterCases = []struct {
	golden string
	args   []string
}{
	{"listeners", []string{"listeners", "--file", istioDump}},
	{"listeners-port", []string{"listeners", "--file", istioDump, "--port", "15021"}},
	{"listeners-type-tcp", []string{"listeners", "--file", istioDump, "--type", "tcp"}},
	{"listeners-type-http", []string{"listeners", "--file", istioDump, "--type", "HTTP"}},
	{"listeners-address", []string{"listeners", "--file", istioDump, "--address", "0.0.0.0"}},
	{"clusters", []string{"clusters", "--file", istioDump}},
	{"clusters-fqdn", []string{"clusters", "--file", istioDump, "--fqdn", "httpbin"}},
	{"clusters-port", []string{"clusters", "--file", istioDump, "--port", "8000"}},
	{"clusters-subset", []string{"clusters", "--file", istioDump, "--subset", "http"}},
	{"clusters-direction", []string{"clusters", "--file", istioDump, "--direction", "inbound-vip"}},
	{"routes", []string{"routes", "--file", istioDump}},
	{"routes-name", []string{"routes", "--file", istioDump, "--name", httpbinInVIP}},
	{"routes-name-none", []string{"routes", "--file", istioDump, "--name", "nothing"}},
	{"endpoints", []string{"endpoints", "--file", clustersJSON}},
	{"endpoints-address", []string{"endpoints", "--file", clustersJSON, "--address", "10.244.1.7"}},
	{"endpoints-port", []string{"endpoints", "--file", clustersJSON, "--port", "15000"}},
	{"endpoints-cluster", []string{"endpoints", "--file", clustersJSON, "--cluster", reviewsOutbnd}},
	{"endpoints-status", []string{"endpoints", "--file", clustersJSON, "--status", "unhealthy"}},
	{"all", []string{"all", "--file", istioDump}},
	{"all-port", []string{"all", "--file", istioDump, "--port", "8000"}},
	{"all-fqdn-subset-direction", []string{"all", "--file", istioDump, "--fqdn", "httpbin", "--subset", "http", "--direction", "inbound"}},
	{"all-address-type", []string{"all", "--file", istioDump, "--address", "0.0.0.0", "--type", "HTTP"}},
	{"all-address-endpoint", []string{"all", "--file", istioDump, "--address", "127.0.0.1:15000"}},
	{"all-name", []string{"all", "--file", istioDump, "--name", httpbinInVIP}},
	{"istio-types-listeners", []string{"listeners", "--file", "testdata/istio-types-listener.json"}},
	{"istio-types-listeners-json", []string{"listeners", "--file", "testdata/istio-types-listener.json", "-o", "json"}},
	{"secret", []string{"secret", "--file", istioDump}},
	{"secret-json", []string{"secret", "--file", istioDump, "-o", "json"}},
	{"secret-yaml", []string{"secret", "--file", istioDump, "-o", "yaml"}},
	// meshlab's endpoints table of a config dump (istioctl reads only /clusters?format=json there).
	{"dump-endpoints-address", []string{"endpoints", "--file", istioDump, "--address", "127.0.0.1"}},
	{"dump-endpoints-status-port", []string{"endpoints", "--file", istioDump, "--status", "healthy", "--port", "15020"}},
	{"listeners-json", []string{"listeners", "--file", istioDump, "--port", "15021", "-o", "json"}},
	{"clusters-yaml", []string{"clusters", "--file", istioDump, "--fqdn", "httpbin", "-o", "yaml"}},
	{"routes-json", []string{"routes", "--file", istioDump, "--name", httpbinInVIP, "-o", "json"}},
	{"endpoints-json", []string{"endpoints", "--file", clustersJSON, "--status", "UNHEALTHY", "-o", "json"}},
}

func TestFiltersGolden(t *testing.T) {
	for _, tc := range filterCases {
		t.Run(tc.golden, func(t *testing.T) {
			out, err := run(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden+".txt"), []byte(out))
		})
	}
}

// TestFiltersMatchIstioctl runs the real istioctl on the same files with the same flags: the output must
// be byte-identical.
func TestFiltersMatchIstioctl(t *testing.T) {
	istioctltest.Path(t) // skips, saying how to build istioctl, when it is absent
	cases := append(filterCases[:len(filterCases):len(filterCases)], struct {
		golden string
		args   []string
	}{"all-json", []string{"all", "--file", istioDump, "-o", "json"}})
	for _, tc := range cases {
		if strings.HasPrefix(tc.golden, "dump-endpoints") {
			continue // istioctl's endpoints reads /clusters?format=json only
		}
		t.Run(tc.golden, func(t *testing.T) {
			want, stderr, err := istioctltest.Run(t, append([]string{"proxy-config"}, tc.args...)...)
			if err != nil {
				t.Fatalf("istioctl %s: %v\n%s", strings.Join(tc.args, " "), err, stderr)
			}
			got, err := run(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("meshlab proxy-config %s:\n%s\nistioctl:\n%s", strings.Join(tc.args, " "), got, want)
			}
		})
	}
}

func TestIstioDumpDecodes(t *testing.T) {
	// Istio's own types decode; the all table reads every section.
	out, err := run("all", "--file", istioDump)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Istio Version:", "SERVICE FQDN", "ADDRESSES", "VHOST NAME", "RESOURCE NAME", "endpoint/127.0.0.1:15000", "httpbin.default.svc.cluster.local"} {
		if !strings.Contains(out, want) {
			t.Errorf("all: no %q in\n%s", want, out)
		}
	}
	// A type no binary knows is shown by name, not fatal.
	data, err := os.ReadFile(istioDump)
	if err != nil {
		t.Fatal(err)
	}
	odd := strings.Replace(string(data), "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
		"type.googleapis.com/example.unknown.v1.Thing", 1)
	path := filepath.Join(t.TempDir(), "odd.json")
	if err := os.WriteFile(path, []byte(odd), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run("listeners", "--file", path, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"@type": "type.googleapis.com/example.unknown.v1.Thing"`) {
		t.Errorf("unknown type not shown by name:\n%s", out)
	}
}

func TestNotAConfigDump(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"object.json": `{"kind": "Pod", "metadata": {"name": "x"}}`,
		"list.json":   `[1, 2]`,
		"text.txt":    "hello: [",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, section := range []string{"listeners", "routes", "clusters", "endpoints", "all"} {
			_, err := run(section, "--file", path)
			var ee *cliutil.ExitError
			if !errors.As(err, &ee) || ee.Code != 2 {
				t.Fatalf("%s %s: err = %v, want exit 2", section, name, err)
			}
			if !strings.Contains(err.Error(), path+" is not an Envoy config dump") {
				t.Errorf("%s %s: message %q", section, name, err)
			}
		}
	}
}
