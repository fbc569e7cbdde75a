package waypoint_test

// apply, list and delete run against Gateway API and Kubernetes fake clientsets (no API server here);
// something must play the waypoint controller, so the test marks the Gateway Programmed itself.

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/internal/golden"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cli/waypoint"
	"github.com/meshlab/meshlab/controlplane/kube"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := waypoint.NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestGenerateGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"generate-default.yaml", []string{"generate"}},
		{"generate-bookinfo-all.yaml", []string{"generate", "-n", "bookinfo", "--name", "reviews-waypoint", "--for", "all"}},
	} {
		got, err := run(t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		path := filepath.Join("testdata", tc.golden)
		golden.Check(t, path, []byte(got))
	}
	if _, err := run(t, "generate", "--for", "pods"); !cliutil.IsUsage(err) {
		t.Errorf("--for pods: err = %v, want a usage error", err)
	}
}

func TestApplyListDelete(t *testing.T) {
	kc := k8sfake.NewSimpleClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	gc := gwfake.NewSimpleClientset()
	old := waypoint.NewClients
	waypoint.NewClients = func(cliutil.Env) (*kube.Clients, error) { return &kube.Clients{Kube: kc, Gateway: gc}, nil }
	defer func() { waypoint.NewClients = old }()

	// Play the controller: mark the Gateway Programmed once it exists.
	go func() {
		ctx := context.Background()
		for range 200 {
			gw, err := gc.GatewayV1().Gateways("default").Get(ctx, "waypoint", metav1.GetOptions{})
			if err == nil {
				meta.SetStatusCondition(&gw.Status.Conditions, metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"})
				_, _ = gc.GatewayV1().Gateways("default").UpdateStatus(ctx, gw, metav1.UpdateOptions{})
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out, err := run(t, "apply", "--enroll-namespace", "--timeout", "5s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "✅ waypoint default/waypoint applied") {
		t.Errorf("apply printed %q", out)
	}
	ns, _ := kc.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
	if ns.Labels["istio.io/use-waypoint"] != "waypoint" {
		t.Errorf("namespace labels = %v", ns.Labels)
	}
	if _, err := run(t, "apply", "--name", "second", "--for", "workload", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	// A Gateway of another class is not listed.
	other := waypoint.Gateway("default", "ingress", "service")
	other.Spec.GatewayClassName = "nginx"
	if _, err := gc.GatewayV1().Gateways("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	// istioctl's bytes: padding 5, the label as written, False until the controller says otherwise.
	want := "NAME         REVISION     TRAFFIC TYPE     PROGRAMMED\n" +
		"second       default      workload         False\n" +
		"waypoint     default      service          True\n"
	if out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}
	out, err = run(t, "status", "--wait=false")
	if err != nil {
		t.Fatal(err)
	}
	want = "NAME         STATUS     TYPE           REASON         MESSAGE\n" +
		"second                                                \n" +
		"waypoint     True       Programmed     Programmed     \n"
	if out != want {
		t.Errorf("status:\n%q\nwant:\n%q", out, want)
	}
	if _, err := run(t, "status", "--waypoint-timeout", "300ms"); err == nil || !strings.Contains(err.Error(), "waypoint default/second not programmed") {
		t.Errorf("status waiting for an unprogrammed waypoint: %v, want a timeout naming it", err)
	}
	if _, err := run(t, "delete", "ingress"); err == nil {
		t.Errorf("deleting a non-waypoint Gateway succeeded")
	}
	if _, err := run(t, "delete"); !cliutil.IsUsage(err) {
		t.Errorf("delete without names: %v, want a usage error", err)
	}
	if out, err = run(t, "delete", "--all"); err != nil || strings.Count(out, "deleted") != 2 {
		t.Errorf("delete --all: %q, %v", out, err)
	}
	l, _ := gc.GatewayV1().Gateways("default").List(context.Background(), metav1.ListOptions{})
	if len(l.Items) != 1 || l.Items[0].Name != "ingress" {
		t.Errorf("left %v, want only ingress", l.Items)
	}
	_ = gwv1.GroupVersion
}

func TestRunIsASubcommand(t *testing.T) {
	cmd := waypoint.NewCommand(cliutil.Env{Globals: &cliutil.Globals{}})
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
	}
	if strings.Join(names, ",") != "apply,delete,generate,list,run,status" {
		t.Errorf("subcommands = %v", names)
	}
}
