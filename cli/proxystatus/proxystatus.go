// Package proxystatus implements `meshlab proxy-status`: for every proxy connected to the control plane,
// whether it has the latest config of each xDS type, in istioctl proxy-status's table. It reads the
// control plane's /debug/syncz.
package proxystatus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// DefaultControlPlane is where the control plane serves its debug endpoints (istiod's monitoring port).
const DefaultControlPlane = "http://localhost:15014"

type flagpole struct {
	controlPlane string
	timeout      time.Duration
}

// NewCommand returns the proxy-status command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "proxy-status",
		Short: "Show whether each proxy is in sync with the control plane (like istioctl proxy-status)",
		Long: `proxy-status lists the proxies connected to the control plane and, per xDS type, whether each
acknowledged the latest config: SYNCED (age since its ACK), STALE (sent, not acknowledged yet),
NACKED (rejected; the proxy keeps its previous config) or NOT SENT.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), env, flags)
		},
	}
	cmd.Flags().StringVar(&flags.controlPlane, "controlplane", "", "base URL of the control plane's debug endpoints (e.g. "+DefaultControlPlane+"); default: the lab's control plane through the API server")
	cmd.Flags().DurationVar(&flags.timeout, "timeout", 10*time.Second, "how long to wait for the control plane")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole) error {
	if flags.controlPlane == "" {
		return runInLab(ctx, env, flags)
	}
	if !strings.HasPrefix(flags.controlPlane, "http://") && !strings.HasPrefix(flags.controlPlane, "https://") {
		return cliutil.Usagef("--controlplane must be an http:// or https:// URL, got %q", flags.controlPlane)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, flags.timeout)
	defer cancel()
	status, err := Fetch(ctx, http.DefaultClient, flags.controlPlane)
	if err != nil {
		return err
	}
	env.Logger.V(1)("%d proxies connected to %s", len(status.Proxies), status.ControlPlane)
	return Write(env.Streams.Out, status, time.Now())
}

// Fetch reads the sync status from the control plane at baseURL.
func Fetch(ctx context.Context, client *http.Client, baseURL string) (xds.SyncStatus, error) {
	var status xds.SyncStatus
	url := strings.TrimSuffix(baseURL, "/") + "/debug/syncz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return status, fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return status, fmt.Errorf("reading %s (is the control plane reachable? e.g. kubectl -n istio-system port-forward deploy/istiod 15014): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return status, fmt.Errorf("reading %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		return status, fmt.Errorf("decoding %s: %w", url, err)
	}
	return status, nil
}

// columns are the xDS types shown, in istioctl's order.
var columns = []string{xdstype.Cluster, xdstype.Listener, xdstype.Endpoint, xdstype.Route}

// Write prints status as istioctl's proxy-status table, ages relative to now.
func Write(w io.Writer, status xds.SyncStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLUSTER\tCDS\tLDS\tEDS\tRDS\tISTIOD\tVERSION")
	rows := make([][]string, 0, len(status.Proxies))
	for _, p := range status.Proxies {
		row := []string{p.DisplayName(), orDash(p.Cluster)}
		for _, t := range columns {
			ts, ok := p.Type(t)
			row = append(row, Cell(ts, ok, now))
		}
		rows = append(rows, append(row, orDash(status.ControlPlane), orDash(p.Version)))
	}
	slices.SortStableFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Cell is one type's state: IGNORED (the proxy does not watch the type), NOT SENT (nothing sent yet), NACKED (the proxy rejected the last
// response), SYNCED (age) (it acknowledged the last response; age since the ACK), or STALE (sent, not
// acknowledged yet).
func Cell(t xds.TypeStatus, subscribed bool, now time.Time) string {
	if !subscribed {
		return "IGNORED" // as istioctl shows types a proxy does not watch (ztunnel's Envoy types)
	}
	st := t.State()
	if st == xds.Synced {
		return string(st) + " (" + duration.HumanDuration(now.Sub(t.LastAck)) + ")"
	}
	return string(st)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runInLab reads syncz from the lab's control plane through the API server's service proxy, so no
// port-forward is needed.
func runInLab(ctx context.Context, env cliutil.Env, flags *flagpole) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, flags.timeout)
	defer cancel()
	clients, err := cluster.New(env.Globals.Name, env.Globals.Kubeconfig, env.Logger).Clients()
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reaching cluster %q: %w", env.Globals.Name, err)}
	}
	status, err := labclient.Syncz(ctx, clients.Kube)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reading the control plane's sync status: %w", err)}
	}
	env.Logger.V(1)("%d proxies connected to %s", len(status.Proxies), status.ControlPlane)
	return Write(env.Streams.Out, status, time.Now())
}
