// Package diff implements `meshlab diff`: what a config change would do to every proxy's config, computed
// before the change is applied, against base YAML or the running lab's objects.
package diff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/diff"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Output formats.
const (
	formatText = "text"
	formatJSON = "json"
	formatYAML = "yaml"
)

type flagpole struct {
	files     []string
	baseFiles []string
	replace   bool
	proxies   []string
	output    string
	exitCode  bool
}

// NewCommand returns the diff command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "diff -f PATH... [--base-file PATH...] [--replace] [--proxy ID]... [-o text|json|yaml] [--exit-code]",
		Short: "Show which proxies' xDS config a change would add, remove or change, field by field, before it is applied",
		Long: `diff renders every proxy's config (waypoints, ingress gateways, sidecars, ztunnels) twice, from the base
world and from the new one, through the same store, model and generators as meshlab render and the control
plane, and prints which resources each proxy would gain, lose or see changed (LDS, RDS, CDS and EDS for
Envoy-style proxies; workloads, services and authorizations for ztunnels), each changed field as
PATH: OLD -> NEW (paths into the JSON meshlab render prints), and the proxies left untouched.

The base world is --base-file (YAML files or directories, as render reads them), or without it the
running lab (--name): its objects as its control plane sees them, listed through the control plane's own
informers. The new world is:
  - by default, the base with the -f objects on top: each -f object replaces the base object of the same
    kind, namespace and name, or is added. -f holds only what changes; an overlay cannot delete.
  - with --replace, the -f objects alone: -f is the whole new world, and whatever the base has and -f
    lacks is deleted.
Sidecars are the pods already injected (annotation sidecar.istio.io/status or an istio-proxy container) or
that the injection webhook would inject (namespace and pod labels, Istio's rules).

Both worlds are decoded strictly and validated as render does: malformed YAML, an unknown kind or an
invalid object is an error naming file and line, and nothing is compared (exit 2). Against the live lab an
-f object replaces the lab's object whole, status included: start from 'kubectl get -o yaml' to keep it.

Exit codes: 0 when it ran (with --exit-code: 0 no proxy config changes, 1 some change), 2 on any error.`,
		Example: `  meshlab diff -f reviews-50-50.yaml                 # against the running lab
  meshlab diff --base-file bookinfo/ -f reviews-50-50.yaml
  meshlab diff --base-file old/ -f new/ --replace --exit-code -o json
  meshlab diff --base-file bookinfo/ -f ns-label.yaml --proxy ztunnel/meshlab-worker`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := runE(cmd.Context(), env, flags)
			var exit *cliutil.ExitError
			if err == nil || errors.As(err, &exit) {
				return err
			}
			return &cliutil.ExitError{Code: 2, Err: err} // 1 means "some change": every error is 2
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&flags.files, "filename", "f", nil, "YAML file or directory holding the change (repeatable)")
	f.StringArrayVar(&flags.baseFiles, "base-file", nil, "YAML file or directory holding the world before the change (repeatable)")
	f.BoolVar(&flags.replace, "replace", false, "the -f files are the whole new world, not objects on top of the base")
	f.StringArrayVar(&flags.proxies, "proxy", nil, "compare only this proxy: waypoint/NS/NAME, gateway/NS/NAME, sidecar/NS/POD or ztunnel/NODE (repeatable)")
	f.StringVarP(&flags.output, "output", "o", formatText, "output format: text, json or yaml")
	f.BoolVar(&flags.exitCode, "exit-code", false, "exit 1 when some proxy's config changes, 0 when none does")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole) error {
	if len(flags.files) == 0 {
		return cliutil.Usagef("no change: give at least one -f PATH")
	}
	switch flags.output {
	case formatText, formatJSON, formatYAML:
	default:
		return cliutil.Usagef("unknown output format %q; want text, json or yaml", flags.output)
	}
	in := diff.Input{Base: diff.FileBase{Paths: flags.baseFiles}, Files: flags.files, Mode: diff.Overlay}
	if len(flags.baseFiles) == 0 {
		cfg, err := cliutil.RESTConfig(env)
		if err != nil {
			return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("the base is the running lab %q (no --base-file): %w", env.Globals.Name, err)}
		}
		in.Base = diff.LiveBase{Config: cfg, Lab: env.Globals.Name}
	}
	if flags.replace {
		in.Mode = diff.Replace
	}
	for _, id := range flags.proxies {
		p, err := model.ProxyFromID(id)
		if err != nil {
			return cliutil.Usagef("--proxy: %v", err)
		}
		in.Proxies = append(in.Proxies, p)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	res, err := diff.Run(ctx, in)
	if res != nil {
		seen := map[string]bool{}
		for _, w := range res.Warnings {
			if !seen[w.String()] { // a file read as base and as change warns once
				seen[w.String()] = true
				env.Logger.Warnf("%s", w)
			}
		}
	}
	if err != nil {
		var nf *model.NotFoundError
		if errors.As(err, &nf) {
			return cliutil.Usagef("%v", err)
		}
		return cliutil.BadInput(err)
	}
	for _, p := range res.Problems {
		env.Logger.Warnf("new world: %s", p)
	}
	if err := write(env, res.Report, flags.output); err != nil {
		return err
	}
	if flags.exitCode && res.Report.Changed() {
		return &cliutil.ExitError{Code: 1}
	}
	return nil
}

func write(env cliutil.Env, r *diff.Report, format string) error {
	switch format {
	case formatJSON:
		return cliutil.WriteJSON(env.Streams.Out, r)
	case formatYAML:
		js, err := json.Marshal(r)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return fmt.Errorf("encoding yaml: %w", err)
		}
		_, err = env.Streams.Out.Write(y)
		return err
	}
	return diff.WriteText(env.Streams.Out, r)
}
