package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// apiServer records the paths a command asks for. It answers /version, /readyz and discovery as an API
// server does and everything else with a 404 Status, so that each command gets far enough to show which
// server it chose and then fails.
type apiServer struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newAPIServer(t *testing.T) *apiServer {
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/version":
			fmt.Fprint(w, `{"major":"1","minor":"33","gitVersion":"v1.33.13"}`)
		case "/readyz":
			fmt.Fprint(w, "ok")
		case "/api":
			fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"]}`)
		case "/apis":
			fmt.Fprint(w, `{"kind":"APIGroupList","groups":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.paths
	s.paths = nil
	return p
}

func kubeconfigFile(t *testing.T, dir, name string, contexts map[string]string, namespaces map[string]string, current string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n")
	for ctx, server := range contexts {
		fmt.Fprintf(&b, "- name: %s\n  cluster: {server: %q}\n", ctx, server)
	}
	b.WriteString("users:\n")
	for ctx := range contexts {
		fmt.Fprintf(&b, "- name: %s\n  user: {token: t}\n", ctx)
	}
	b.WriteString("contexts:\n")
	for ctx := range contexts {
		fmt.Fprintf(&b, "- name: %s\n  context: {cluster: %s, user: %s, namespace: %s}\n", ctx, ctx, ctx, namespaces[ctx])
	}
	fmt.Fprintf(&b, "current-context: %s\n", current)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every command that reads the cluster acts on the cluster kubectl would: --context picks a context of
// --kubeconfig, --kubeconfig alone its current context, and --context alone looks in $KUBECONFIG with its
// files merged. Each run is checked by which of two API servers it reached.
func TestCommandsHonourKubeconfigAndContext(t *testing.T) {
	first, second := newAPIServer(t), newAPIServer(t)
	dir := t.TempDir()
	both := kubeconfigFile(t, dir, "both", map[string]string{"first": first.URL, "second": second.URL},
		map[string]string{"first": "team-a", "second": "team-b"}, "first")
	onlyFirst := kubeconfigFile(t, dir, "only-first", map[string]string{"first": first.URL}, map[string]string{"first": "team-a"}, "first")
	onlySecond := kubeconfigFile(t, dir, "only-second", map[string]string{"second": second.URL}, map[string]string{"second": "team-b"}, "second")

	// explain connects through scenarios.Connect as check, version and scenario run do; it is left out
	// because against this server its informers wait 20 s for lists that never come.
	commands := [][]string{
		{"status"},
		{"proxy-status"},
		{"wait", "--timeout", "1s"},
		{"proxy-config", "listeners", "deploy/waypoint"},
		{"ztunnel-config", "workload"},
		{"waypoint", "list"},
		{"waypoint", "status", "--wait=false"},
		{"waypoint", "delete", "--all"},
		{"check"},
		{"version"},
		{"scenario", "run", "--all"},
		{"lab", "run", "--all"},
	}
	for _, c := range []struct {
		how      string
		flags    []string
		env      string // $KUBECONFIG
		want     *apiServer
		notWant  *apiServer
		nsInPath string // a namespaced request must name the context's namespace
	}{
		{"--kubeconfig and --context", []string{"--kubeconfig", both, "--context", "second"}, "", second, first, "team-b"},
		{"--kubeconfig: its current context", []string{"--kubeconfig", both}, "", first, second, "team-a"},
		{"--context in $KUBECONFIG's merged files", []string{"--context", "second"}, onlyFirst + string(os.PathListSeparator) + onlySecond, second, first, "team-b"},
	} {
		t.Run(c.how, func(t *testing.T) {
			t.Setenv("KUBECONFIG", c.env)
			for _, args := range commands {
				first.take()
				second.take()
				full := append(append([]string{}, args...), c.flags...)
				code, _, stderr := run(full...)
				got, other := c.want.take(), c.notWant.take()
				if len(got) == 0 || len(other) != 0 {
					t.Errorf("meshlab %s (exit %d): %d requests to the named cluster, %d to the other; want some and none\n%s",
						strings.Join(full, " "), code, len(got), len(other), stderr)
				}
			}
			// A namespaced command without -n lists in the context's namespace, as kubectl does.
			c.want.take()
			run(append([]string{"waypoint", "list"}, c.flags...)...)
			if paths := strings.Join(c.want.take(), " "); !strings.Contains(paths, "/namespaces/"+c.nsInPath+"/gateways") {
				t.Errorf("waypoint list without -n asked for %s, want namespace %s's gateways", paths, c.nsInPath)
			}
		})
	}
}

// An unknown --context is an environment error naming it: exit 2, nothing read from another cluster.
func TestUnknownContextExitsTwo(t *testing.T) {
	first := newAPIServer(t)
	kc := kubeconfigFile(t, t.TempDir(), "kc", map[string]string{"first": first.URL}, map[string]string{"first": "team-a"}, "first")
	code, _, stderr := run("status", "--kubeconfig", kc, "--context", "nope")
	if code != 2 || !strings.Contains(stderr, `"nope"`) {
		t.Errorf("exit %d, want 2 naming the context:\n%s", code, stderr)
	}
	if p := first.take(); len(p) != 0 {
		t.Errorf("the current context's server was asked %v", p)
	}
}
