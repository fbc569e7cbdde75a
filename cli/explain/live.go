package explain

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/explain"
	"github.com/meshlab/meshlab/explain/live"
	"github.com/meshlab/meshlab/scenarios"
)

// observation is what -o json prints with --observe.
type observation struct {
	Prediction *explain.Report    `json:"prediction"`
	Observed   *explain.Observed  `json:"observed"`
	Comparison explain.Comparison `json:"comparison"`
}

// runLive explains the request on the running lab, and with --observe sends it and compares.
func runLive(ctx context.Context, env cliutil.Env, flags *flagpole, rawURL string, headers http.Header) error {
	lab, err := scenarios.Connect(ctx, env.Globals.Target(), env.Logger)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	src, warnings, err := live.Connect(ctx, lab.Config)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: err}
	}
	for _, w := range warnings {
		env.Logger.V(1)("%s", w) // the lab's own problems: `meshlab status` shows them
	}
	from, err := source(ctx, lab, flags)
	if err != nil {
		return err
	}
	src.Prefetch(proxiesToPrefetch(src.Mesh(), from)...)
	report, err := explain.Explain(src, explain.Request{From: from, URL: rawURL, Method: flags.method, Headers: headers})
	if err != nil {
		return explainError(err)
	}
	report.ConfigFrom = src.Origins()
	env.Logger.V(1)("predicted in %s", time.Since(start).Round(time.Millisecond))
	if !flags.observe {
		if flags.output == "json" {
			return cliutil.WriteJSON(env.Streams.Out, report)
		}
		return report.WriteText(env.Streams.Out)
	}

	switch report.Source.Capture {
	case explain.CaptureAmbient, explain.CaptureNone:
	default:
		return cliutil.Usagef("--observe reads ztunnels' and waypoints' access logs; a %s source is not observed (explain without --observe)", report.Source.Capture)
	}
	ns, pod, _ := strings.Cut(from, "/")
	req := scenarios.Request{Namespace: ns, Pod: pod, URL: rawURL}
	if wl := src.Mesh().Workload(ns, pod); wl != nil && wl.Object != nil && len(wl.Object.Spec.Containers) > 0 {
		req.Container = wl.Object.Spec.Containers[0].Name
	}
	if flags.method != "" && !strings.EqualFold(flags.method, http.MethodGet) {
		req.Args = append(req.Args, "-X", strings.ToUpper(flags.method))
	}
	for _, h := range flags.headers {
		req.Args = append(req.Args, "-H", h)
	}
	obs, err := lab.Observe(ctx, req, observeWait)
	if err != nil {
		return fmt.Errorf("--observe: %w", err)
	}
	observed := live.Observed(obs)
	cmp := explain.Compare(report, observed)
	if flags.output == "json" {
		err = cliutil.WriteJSON(env.Streams.Out, observation{Prediction: report, Observed: observed, Comparison: cmp})
	} else {
		err = writeObservation(env.Streams.Out, report, observed, cmp)
	}
	if err != nil {
		return err
	}
	if !cmp.Same {
		return &cliutil.ExitError{Code: 1}
	}
	return nil
}

func writeObservation(w io.Writer, r *explain.Report, o *explain.Observed, cmp explain.Comparison) error {
	if err := r.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nobserved  x-request-id %s", o.RequestID)
	if o.Local != "" {
		fmt.Fprintf(w, " from %s", o.Local)
	}
	fmt.Fprintln(w)
	for _, l := range o.Lines {
		fmt.Fprintf(w, "   %s\n", l)
	}
	fmt.Fprintln(w)
	return cmp.WriteText(w)
}

// source resolves --from on the lab to NAMESPACE/POD: NAMESPACE/POD as given, or a POD or deploy/NAME
// in -n (a running pod of the Deployment); the default is deploy/sleep, where `meshlab curl` runs.
func source(ctx context.Context, lab *scenarios.Env, flags *flagpole) (string, error) {
	from := flags.from
	if from == "" {
		from = "deploy/sleep"
	}
	kind, rest, ok := strings.Cut(from, "/")
	if ok && kind != "deploy" && kind != "deployment" && kind != "pod" && kind != "po" {
		if rest == "" || strings.Contains(rest, "/") {
			return "", cliutil.Usagef("--from %q: want NAMESPACE/POD, POD or deploy/NAME", from)
		}
		return from, nil // NAMESPACE/POD
	}
	ns := flags.namespace
	if ns == "" {
		ns = lab.Namespace // the context's namespace (kubectl's default), "default" in the lab
	}
	t, err := labclient.ParseTarget(from, ns)
	if err != nil {
		return "", cliutil.Usagef("--from: %v", err)
	}
	pod, err := t.Pod(ctx, lab.Kube)
	if err != nil {
		return "", &cliutil.UsageError{Err: fmt.Errorf("--from %s: %w", from, err)}
	}
	return pod.Namespace + "/" + pod.Name, nil
}

// proxiesToPrefetch are the L7 proxies a request from the source may cross: every waypoint, the source's
// own sidecar or gateway. Their dumps are read in parallel with the ztunnels'.
func proxiesToPrefetch(snap *model.Snapshot, from string) []model.Proxy {
	var out []model.Proxy
	for _, w := range snap.Waypoints() {
		out = append(out, model.Proxy{Kind: model.KindWaypoint, Namespace: w.Namespace, Name: w.Name})
	}
	ns, name, _ := strings.Cut(from, "/")
	if wl := snap.Workload(ns, name); wl != nil {
		if gw := wl.Labels[model.LabelGatewayName]; gw != "" && snap.IngressGateway(ns, gw) != nil {
			out = append(out, model.Proxy{Kind: model.KindGateway, Namespace: ns, Name: gw})
		}
	}
	return out
}
