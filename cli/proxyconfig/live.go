package proxyconfig

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/scenarios"
)

// liveGet is the seam tests replace: it returns a running proxy's admin answer at path (/config_dump,
// /clusters?format=json).
var liveGet = func(ctx context.Context, env cliutil.Env, target labclient.Target, path string) ([]byte, error) {
	lab, err := scenarios.Connect(ctx, env.Globals.Target(), env.Logger)
	if err != nil {
		return nil, &cliutil.ExitError{Code: 2, Err: err}
	}
	pod, err := target.Pod(ctx, lab.Kube)
	if err != nil {
		return nil, err
	}
	env.Logger.V(1)("reading %s from %s/%s:%d through a port-forward", path, pod.Namespace, pod.Name, labclient.AdminPort)
	data, err := labclient.PodGet(ctx, lab.Config, lab.Kube, pod.Namespace, pod.Name, labclient.AdminPort, path)
	if err != nil {
		return nil, fmt.Errorf("%w (is %s a meshlab proxy? waypoints, sidecars and ztunnel serve their admin API on %d)", err, target, labclient.AdminPort)
	}
	return data, nil
}

// readDump returns what to print and a name for it in messages: the --file DUMP, or the admin answer at
// path of TARGET (deploy/NAME[.NAMESPACE] or a pod NAME[.NAMESPACE]) read from its admin port through
// the API server's port-forward. As with istioctl, a waypoint's listeners are in the waypoint view only
// with --waypoint.
func readDump(ctx context.Context, env cliutil.Env, flags *flagpole, args []string, path string) ([]byte, string, error) {
	switch {
	case flags.file != "" && len(args) > 0:
		return nil, "", cliutil.Usagef("give a TARGET or --file DUMP, not both")
	case flags.file != "":
		data, err := os.ReadFile(flags.file)
		if err != nil {
			return nil, "", fmt.Errorf("reading %s: %w", flags.file, err)
		}
		return data, flags.file, nil
	case len(args) == 0:
		return nil, "", cliutil.Usagef("no dump: give --file DUMP, or a TARGET (deploy/NAME[.NAMESPACE] or a pod) to read a running proxy")
	}
	target, err := labclient.ParseTarget(args[0], "default")
	if err != nil {
		return nil, "", cliutil.Usagef("%v", err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	data, err := liveGet(ctx, env, target, path)
	if err != nil {
		return nil, "", err
	}
	return data, target.String(), nil
}
