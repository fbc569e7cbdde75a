// Package lifecycle is the meshlab lab's life as a whole: what `meshlab up` brings up (host checks, node image, the
// kind cluster, meshlab's image, the pod network, bookinfo and sleep, the user's own apps), how `status` reads it back and
// how `down` removes it. The mechanics live in cluster/, nodeimage/, image/; this package decides the order.
package lifecycle

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kinddefaults "sigs.k8s.io/kind/pkg/apis/config/defaults"

	"github.com/meshlab/meshlab/apps"
	"github.com/meshlab/meshlab/bookinfo"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/cni"
	"github.com/meshlab/meshlab/cluster/host"
	"github.com/meshlab/meshlab/cluster/nodeimage"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/image"
	"github.com/meshlab/meshlab/log"
	"github.com/meshlab/meshlab/manifests"
)

// Namespace where bookinfo and sleep run.
const Namespace = "default"

// KindDefaultImage is kind's published node image, used when it is present or can be pulled.
const KindDefaultImage = kinddefaults.Image

// ErrEnvironment marks failures of the machine rather than of meshlab (exit code 2); it is
// cluster.ErrEnvironment, so that every command classifies them alike.
var ErrEnvironment = cluster.ErrEnvironment

// UpOptions shape `meshlab up`.
type UpOptions struct {
	Name       string
	Kubeconfig string
	NodeImage  string // explicit node image; empty: auto
	Offline    bool   // never try to pull kind's published node image
	Workers    int
	Wait       time.Duration
	// Ambient enrols the bookinfo namespace in the ambient mesh (istio.io/dataplane-mode=ambient), as
	// Istio's getting-started does; false removes the label.
	Ambient bool
	// With are the user's own manifests (files or directories) applied after the mesh and bookinfo.
	With []string
	// RecreateBroken deletes and creates again an existing cluster whose nodes are stopped or whose API
	// server does not become ready (a kind cluster often does not survive a Docker restart). Without it,
	// such a cluster stops `up` with an error saying so: deleting a cluster is the user's decision.
	RecreateBroken bool
}

// apiServerGrace is how long `up` waits for the API server of a cluster it reuses: long enough for one
// whose node container has just started again, short enough to report a broken one soon.
const apiServerGrace = 90 * time.Second

// Result is what `up` reports when it is done.
type Result struct {
	Cluster   string
	NodeImage string
	Image     string
	Steps     []StepTime
	Total     time.Duration
}

// StepTime is how long one step of `up` took.
type StepTime struct {
	Name     string
	Duration time.Duration
}

// Up brings the lab up, converging an existing cluster instead of failing.
func Up(ctx context.Context, opts UpOptions, logger log.Logger) (*Result, error) {
	start := time.Now()
	res := &Result{Cluster: opts.Name}
	status := log.StatusFor(logger)
	defer status.End(false)
	step := func(name string, fn func() error) error {
		t := time.Now()
		err := status.Step(name, fn)
		res.Steps = append(res.Steps, StepTime{name, time.Since(t)})
		return err
	}

	// The user's manifests are read first: a malformed file stops `up` before it changes anything.
	var userObjs []apps.Object
	if len(opts.With) > 0 {
		var err error
		if userObjs, err = apps.Read(opts.With); err != nil {
			return res, err
		}
	}

	var report host.Report
	if err := step("Checking the host", func() error {
		report = host.Check(ctx)
		if len(report.Problems()) == 0 {
			return nil
		}
		if !report.Root {
			return fmt.Errorf("%w: %s", ErrEnvironment, strings.Join(report.Problems(), "; "))
		}
		var err error
		report, err = host.Prepare(ctx, logger.V(1))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrEnvironment, err)
		}
		return nil
	}); err != nil {
		return res, err
	}

	var err error
	res.NodeImage, err = ensureNodeImage(ctx, opts, report.CgroupV2, status, logger)
	if err != nil {
		return res, err
	}

	var tarPath string
	if err := step("Packing meshlab into an image", func() error {
		res.Image, tarPath, err = packSelf()
		return err
	}); err != nil {
		return res, err
	}

	c := cluster.New(opts.Name, opts.Kubeconfig, logger)
	exists, err := c.Exists()
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	if exists {
		err := step(fmt.Sprintf("Reusing kind cluster %q", opts.Name), func() error { return checkHealthy(ctx, c) })
		switch {
		case err != nil && opts.RecreateBroken:
			logger.V(0)("cluster %q is broken (%v); deleting it to create it again (--recreate-broken)", opts.Name, err)
			if err := step(fmt.Sprintf("Deleting broken kind cluster %q", opts.Name), c.Delete); err != nil {
				return res, err
			}
			exists = false
		case err != nil:
			return res, fmt.Errorf("%w\nthe cluster exists but is broken (often after Docker restarted): run `meshlab down --name %s` and `up` again, or `up --recreate-broken`", err, opts.Name)
		}
	}
	if !exists {
		if err := step(fmt.Sprintf("Creating kind cluster %q", opts.Name), func() error {
			return c.Create(cluster.CreateOptions{
				NodeImage:           res.NodeImage,
				Workers:             opts.Workers,
				RestrictOOMScoreAdj: report.MissingSysResource,
			})
		}); err != nil {
			return res, err
		}
	}

	if err := step("Loading the meshlab image into the nodes", func() error {
		if err := c.LoadImage(ctx, res.Image, tarPath); err != nil {
			return err
		}
		// The stable name the user's manifests (and `meshlab echo manifest`) can write.
		return c.TagImage(ctx, res.Image, image.LabRef)
	}); err != nil {
		return res, err
	}
	clients, err := c.Clients()
	if err != nil {
		return res, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, opts.Wait)
	defer cancel()
	if err := step("Installing the pod network", func() error {
		if err := cluster.Apply(waitCtx, clients.Client, cni.Objects(res.Image)); err != nil {
			return err
		}
		return cluster.WaitNodesReady(waitCtx, clients.Client, 1+opts.Workers)
	}); err != nil {
		return res, err
	}
	if err := step("Deploying the mesh: control plane and ztunnel", func() error {
		if err := migrateOlderLayout(waitCtx, clients.Client, logger); err != nil {
			return err
		}
		if err := cluster.Apply(waitCtx, clients.Client, manifests.ControlPlane(res.Image)); err != nil {
			return err
		}
		if err := cluster.Apply(waitCtx, clients.Client, manifests.Ztunnel(res.Image)); err != nil {
			return err
		}
		return cluster.WaitReady(waitCtx, clients.Client, meshComponents())
	}); err != nil {
		return res, err
	}
	if err := step("Deploying bookinfo, sleep and bookinfo-gateway", func() error {
		if err := setAmbient(waitCtx, clients.Client, Namespace, opts.Ambient); err != nil {
			return err
		}
		if err := cluster.Apply(waitCtx, clients.Client, manifests.Bookinfo(res.Image, Namespace)); err != nil {
			return err
		}
		// Istio's getting-started ingress: Gateway bookinfo-gateway and HTTPRoute bookinfo; the control
		// plane's gateway controller creates Deployment bookinfo-gateway-istio, which Components includes.
		if err := cluster.Apply(waitCtx, clients.Client, manifests.BookinfoGateway(Namespace)); err != nil {
			return err
		}
		if err := cluster.WaitReady(waitCtx, clients.Client, Components()); err != nil {
			return err
		}
		if !opts.Ambient {
			return nil
		}
		// Ready pods are not yet mesh pods: wait until ztunnel has captured each one, so the first
		// request after `up` already travels over HBONE.
		return waitEnrolled(waitCtx, clients.Client, Namespace)
	}); err != nil {
		return res, err
	}
	if len(userObjs) > 0 {
		if err := step("Deploying your apps", func() error { return deployApps(waitCtx, clients.Client, userObjs) }); err != nil {
			return res, err
		}
	}
	status.End(true)
	res.Total = time.Since(start)
	return res, nil
}

// deployApps checks every one of the user's objects against the lab before applying any, applies them,
// records their workloads for `status` and waits for those to be ready (and captured, in ambient
// namespaces), as for bookinfo.
func deployApps(ctx context.Context, c client.Client, objs []apps.Object) error {
	objs, err := apps.Check(objs, c.RESTMapper())
	if err != nil {
		return err
	}
	if err := apps.DryRun(ctx, c, objs); err != nil {
		return err
	}
	if err := apps.Apply(ctx, c, objs); err != nil {
		return err
	}
	ws := apps.Workloads(objs)
	if err := apps.Record(ctx, c, ws); err != nil {
		return err
	}
	if err := cluster.WaitReady(ctx, c, ws); err != nil {
		return err
	}
	for _, ns := range apps.Namespaces(ws) {
		var n corev1.Namespace
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
			return fmt.Errorf("reading namespace %s: %w", ns, err)
		}
		if n.Labels[AmbientLabel] == "ambient" {
			if err := waitEnrolled(ctx, c, ns); err != nil {
				return err
			}
		}
	}
	return nil
}

// meshComponents are meshlab's own mesh: the control plane and the node proxies.
func meshComponents() []cluster.Workload {
	return []cluster.Workload{
		{Kind: manifests.ControlPlaneWorkload.Kind, Namespace: manifests.ControlPlaneWorkload.Namespace, Name: manifests.ControlPlaneWorkload.Name},
		{Kind: "DaemonSet", Namespace: manifests.ZtunnelNamespace, Name: manifests.ZtunnelName},
	}
}

// Components are the workloads `up` waits for and `status` reports, in order.
func Components() []cluster.Workload {
	ws := []cluster.Workload{
		{Kind: "DaemonSet", Namespace: "kube-system", Name: cni.Name},
		{Kind: "Deployment", Namespace: "kube-system", Name: "coredns"},
	}
	ws = append(ws, meshComponents()...)
	for _, d := range bookinfo.DeploymentNames() {
		ws = append(ws, cluster.Workload{Kind: "Deployment", Namespace: Namespace, Name: d})
	}
	return append(ws, cluster.Workload{Kind: "Deployment", Namespace: Namespace, Name: manifests.BookinfoGatewayService})
}

// ensureNodeImage picks the node image: the one asked for; else meshlab's locally built one; else
// kind's published one when present or pullable; else it builds one offline (slow once, then cached).
func ensureNodeImage(ctx context.Context, opts UpOptions, cgroupV2 bool, status log.Status, logger log.Logger) (string, error) {
	if opts.NodeImage != "" {
		if !nodeimage.Exists(ctx, opts.NodeImage) {
			return "", fmt.Errorf("node image %q is not present locally (build one with `meshlab node-image build`)", opts.NodeImage)
		}
		return opts.NodeImage, nil
	}
	local := nodeimage.Options{}.Image()
	if nodeimage.Exists(ctx, local) {
		return local, nil
	}
	// kind's published image runs Kubernetes 1.35+, whose kubelet refuses cgroup v1 hosts.
	useKind := cgroupV2
	if !useKind {
		logger.V(1)("cgroup v1 host: kind's published node image (Kubernetes 1.35+) cannot run here; using meshlab's own")
	}
	if useKind && nodeimage.Exists(ctx, KindDefaultImage) {
		return KindDefaultImage, nil
	}
	if useKind && !opts.Offline {
		pulled := false
		_ = status.Step("Pulling kind's node image "+KindDefaultImage, func() error {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(pctx, "docker", "pull", KindDefaultImage).CombinedOutput()
			if err != nil {
				logger.V(0)("cannot pull %s (%s); building a node image offline instead", KindDefaultImage, strings.TrimSpace(lastLine(string(out))))
				return err
			}
			pulled = true
			return nil
		})
		if pulled {
			return KindDefaultImage, nil
		}
	}
	logger.V(0)("Building a node image offline: about 20 minutes the first time, cached afterwards")
	return nodeimage.Build(ctx, nodeimage.Options{}, status, logger.V(1))
}

// packSelf packs the running binary into meshlab's image and writes its tarball into the cache.
func packSelf() (ref, tarPath string, err error) {
	bin, err := image.SelfBinary()
	if err != nil {
		return "", "", err
	}
	img, tag, err := image.Build(bin)
	if err != nil {
		return "", "", err
	}
	cache, err := nodeimage.CacheDir()
	if err != nil {
		return "", "", err
	}
	tarPath = filepath.Join(cache, "images", tag.TagStr()+".tar")
	if _, err := os.Stat(tarPath); err == nil {
		return tag.String(), tarPath, nil
	}
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		return "", "", err
	}
	if err := image.WriteTarball(tarPath, img, tag); err != nil {
		return "", "", err
	}
	// Only the current build's tarball is worth keeping; older ones are 20+ MB each.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(tarPath), "sha-*.tar"))
	for _, p := range old {
		if p != tarPath {
			os.Remove(p)
		}
	}
	return tag.String(), tarPath, nil
}

// checkHealthy is what reusing a cluster needs: every node container running and the API server ready.
func checkHealthy(ctx context.Context, c *cluster.Cluster) error {
	if err := checkNodesRunning(ctx, c); err != nil {
		return err
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	return cluster.WaitAPIServerReady(ctx, cfg, c.Name, apiServerGrace)
}

func checkNodesRunning(ctx context.Context, c *cluster.Cluster) error {
	ns, err := c.Nodes()
	if err != nil {
		return err
	}
	if len(ns) == 0 {
		return fmt.Errorf("%w: cluster %q has no nodes", ErrEnvironment, c.Name)
	}
	for _, n := range ns {
		out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Running}}", n.String()).Output()
		if err != nil || strings.TrimSpace(string(out)) != "true" {
			return fmt.Errorf("%w: node %s of cluster %q is not running (`docker start %s` may bring it back)", ErrEnvironment, n, c.Name, n)
		}
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Down deletes the cluster and its kubeconfig entries. A missing cluster is fine.
func Down(name, kubeconfig string, logger log.Logger) (existed bool, err error) {
	c := cluster.New(name, kubeconfig, logger)
	existed, err = c.Exists()
	if err != nil {
		return false, err
	}
	// Delete even when kind does not list it: an interrupted create can leave labelled node containers.
	return existed, c.Delete()
}

// Status is what `meshlab status` prints.
type Status struct {
	Cluster    string                   `json:"cluster"`
	Exists     bool                     `json:"exists"`
	Nodes      []cluster.NodeStatus     `json:"nodes"`
	Components []cluster.WorkloadStatus `json:"components"`
	Ready      bool                     `json:"ready"`
}

// GetStatus reads the lab's state, in the lab's kind cluster or in the cluster an explicit --kubeconfig or
// --context names (there Exists means its API server answered).
func GetStatus(ctx context.Context, target cluster.Target, logger log.Logger) (*Status, error) {
	st := &Status{Cluster: target.Name}
	var clients *cluster.Clients
	if target.Explicit() {
		st.Cluster = target.String()
		cfg, err := target.RESTConfig(logger)
		if err != nil {
			return nil, err
		}
		if clients, err = cluster.NewClients(cfg); err != nil {
			return nil, err
		}
	} else {
		c := cluster.New(target.Name, "", logger)
		exists, err := c.Exists()
		if err != nil {
			return nil, err
		}
		if !exists {
			return st, nil
		}
		if clients, err = c.Clients(); err != nil {
			return nil, err
		}
	}
	st.Exists = true
	var err error
	if st.Nodes, err = cluster.ListNodeStatus(ctx, clients.Client); err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	st.Ready = len(st.Nodes) > 0
	for _, n := range st.Nodes {
		st.Ready = st.Ready && n.Ready
	}
	user, err := apps.Recorded(ctx, clients.Client)
	if err != nil {
		return nil, err
	}
	for _, w := range Components() {
		ws, err := cluster.GetStatus(ctx, clients.Client, w)
		if err != nil {
			return nil, err
		}
		st.Components = append(st.Components, ws)
		st.Ready = st.Ready && ws.IsReady()
	}
	for _, w := range user {
		ws, err := cluster.GetStatus(ctx, clients.Client, w)
		if err != nil {
			return nil, err
		}
		st.Components = append(st.Components, ws)
		// One of your workloads you have since deleted is listed as missing, but is no reason to call
		// the lab not ready; one that is there must be ready.
		st.Ready = st.Ready && (ws.IsReady() || !ws.Found)
	}
	return st, nil
}

// AmbientLabel enrols a namespace in the ambient mesh.
const AmbientLabel = "istio.io/dataplane-mode"

// setAmbient labels (or unlabels) the namespace for ambient capture, creating it if needed.
func setAmbient(ctx context.Context, c client.Client, namespace string, on bool) error {
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	patch := client.MergeFrom(ns.DeepCopy())
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	if on {
		ns.Labels[AmbientLabel] = "ambient"
	} else {
		delete(ns.Labels, AmbientLabel)
	}
	return c.Patch(ctx, &ns, patch)
}

// waitEnrolled waits until every running pod in namespace carries ztunnel's redirection annotation.
func waitEnrolled(ctx context.Context, c client.Client, namespace string) error {
	return cluster.Poll(ctx, func() (bool, string, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
			return false, "", err
		}
		var waiting []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Labels[model.LabelDataplaneMode] == "none" {
				continue // opted out: gateways and waypoints speak HBONE themselves
			}
			if p.Annotations[agent.RedirectionAnnotation] != "enabled" {
				waiting = append(waiting, p.Name)
			}
		}
		return len(waiting) == 0, fmt.Sprintf("pods not yet captured by ztunnel: %v", waiting), nil
	})
}
