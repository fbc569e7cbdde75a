package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// bundle saves the evidence of a failure while the lab is still in the failing state (before teardown):
// the failures, the scenario's log, what it applied, syncz, the config the control plane sent each
// touched proxy, logs of the involved pods and events. It returns the folder, or "" if it could not
// create one. Collection errors are noted in the bundle, never fatal.
func (r *Runner) bundle(ctx context.Context, t *T, res *Result) string {
	dir := r.bundlePath(t.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.logf("  %s: cannot create bundle %s: %v", t.name, dir, err)
		return ""
	}
	b := &bundleWriter{dir: dir}
	t.mu.Lock()
	snapshot := *res
	snapshot.Failures = slices.Clone(t.failures)
	snapshot.Log = slices.Clone(t.log)
	t.mu.Unlock()
	writeBundleSummary(dir, snapshot)
	b.write("applied.txt", []byte(t.appliedYAML()))
	if t.Env != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
		defer cancel()
		collectLive(cctx, b, t)
	}
	if len(b.errs) > 0 {
		b.write("collection-errors.txt", []byte(strings.Join(b.errs, "\n")+"\n"))
	}
	r.logf("  %s: bundle saved to %s", t.name, dir)
	return dir
}

// writeBundleSummary writes failure.txt (expected vs seen) and result.json; it is rewritten when
// teardown adds failures.
func writeBundleSummary(dir string, res Result) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "scenario %s: %s\n\n", res.Name, res.Description)
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "%s: %s\n\n", f.Step, f.String())
	}
	_ = os.WriteFile(filepath.Join(dir, "failure.txt"), b.Bytes(), 0o644)
	js, _ := json.MarshalIndent(toJSON(res), "", "  ")
	_ = os.WriteFile(filepath.Join(dir, "result.json"), append(js, '\n'), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "log.txt"), []byte(strings.Join(res.Log, "\n")+"\n"), 0o644)
}

type bundleWriter struct {
	dir  string
	errs []string
}

func (b *bundleWriter) write(name string, data []byte) {
	path := filepath.Join(b.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.errs = append(b.errs, err.Error())
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.errs = append(b.errs, err.Error())
	}
}

func (b *bundleWriter) fail(what string, err error) {
	b.errs = append(b.errs, fmt.Sprintf("%s: %v", what, err))
}

// fileName makes an ID or pod name safe as a file name.
func fileName(s string) string {
	return strings.NewReplacer("/", "_", "~", "_", ":", "_", " ", "_").Replace(s)
}

func collectLive(ctx context.Context, b *bundleWriter, t *T) {
	env := t.Env
	syncz, err := labclient.SynczRaw(ctx, env.Kube)
	if err != nil {
		b.fail("syncz", err)
	} else {
		b.write("syncz.json", syncz)
		var st xds.SyncStatus
		if json.Unmarshal(syncz, &st) == nil {
			t.mu.Lock()
			touched := slices.Clone(t.touched)
			t.mu.Unlock()
			for _, p := range st.Proxies {
				if !slices.ContainsFunc(touched, func(s ProxySet) bool { return s.Min >= 0 && s.matches(p) }) {
					continue
				}
				dump, err := labclient.ControlPlaneDumpRaw(ctx, env.Kube, p.ID)
				if err != nil {
					b.fail("config dump of "+p.ID, err)
					continue
				}
				b.write(filepath.Join("configdump", fileName(p.ID)+".json"), dump)
			}
		}
	}

	// Pods whose logs matter: the mesh's own, sleep, and whatever the scenario named.
	t.mu.Lock()
	selectors := append([]PodSelector{
		{labclient.ControlPlaneNamespace, ""},
		{env.Namespace, "app=sleep"},
	}, t.involved...)
	namespaces := map[string]bool{env.Namespace: true, labclient.ControlPlaneNamespace: true}
	for _, a := range t.applied {
		if ns := a.obj.GetNamespace(); ns != "" {
			namespaces[ns] = true
		} else if a.obj.GetKind() == "Namespace" {
			namespaces[a.obj.GetName()] = true
		}
	}
	t.mu.Unlock()
	seen := map[string]bool{}
	for _, sel := range selectors {
		pods, err := env.Kube.CoreV1().Pods(sel.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.Selector})
		if err != nil {
			b.fail("listing pods "+sel.Namespace+" "+sel.Selector, err)
			continue
		}
		for _, p := range pods.Items {
			if seen[p.Namespace+"/"+p.Name] {
				continue
			}
			seen[p.Namespace+"/"+p.Name] = true
			collectPodLogs(ctx, b, env, &p)
			if strings.Contains(p.Name, "waypoint") {
				// The proxy's own view, next to what the control plane sent it.
				if dump, err := labclient.PodDumpRaw(ctx, env.Config, env.Kube, p.Namespace, p.Name); err == nil {
					b.write(filepath.Join("configdump", "pod_"+fileName(p.Namespace+"_"+p.Name)+".json"), dump)
				} else {
					b.fail("admin config dump of "+p.Namespace+"/"+p.Name, err)
				}
			}
		}
	}
	nsList := make([]string, 0, len(namespaces))
	for ns := range namespaces {
		nsList = append(nsList, ns)
	}
	sort.Strings(nsList)
	for _, ns := range nsList {
		collectEvents(ctx, b, env, ns)
	}
}

func collectPodLogs(ctx context.Context, b *bundleWriter, env *Env, p *corev1.Pod) {
	tail := int64(2000)
	var containers []string
	for _, c := range p.Spec.InitContainers {
		containers = append(containers, c.Name)
	}
	for _, c := range p.Spec.Containers {
		containers = append(containers, c.Name)
	}
	for _, c := range containers {
		data, err := env.Kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c, TailLines: &tail}).DoRaw(ctx)
		if err != nil {
			b.fail(fmt.Sprintf("logs of %s/%s[%s]", p.Namespace, p.Name, c), err)
			continue
		}
		b.write(filepath.Join("logs", fileName(p.Namespace+"_"+p.Name+"_"+c)+".log"), data)
	}
}

func collectEvents(ctx context.Context, b *bundleWriter, env *Env, ns string) {
	events, err := env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.fail("events of "+ns, err)
		return
	}
	items := events.Items
	sort.Slice(items, func(i, j int) bool { return eventTime(&items[i]).Before(eventTime(&items[j])) })
	var out bytes.Buffer
	for _, e := range items {
		fmt.Fprintf(&out, "%s\t%s\t%s\t%s/%s\t%s\n", eventTime(&e).UTC().Format(time.RFC3339), e.Type, e.Reason,
			e.InvolvedObject.Kind, e.InvolvedObject.Name, strings.TrimSpace(e.Message))
	}
	b.write(filepath.Join("events", ns+".txt"), out.Bytes())
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
