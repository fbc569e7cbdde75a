// Package proxystatus implements `meshlab proxy-status`: for every proxy connected to the control plane,
// whether it has the latest config of each xDS type, in istioctl proxy-status's table. It reads the
// control plane's /debug/meshlab/syncz.
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
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// DefaultControlPlane is where the control plane serves its debug endpoints (istiod's monitoring port).
const DefaultControlPlane = "http://localhost:15014"

type flagpole struct {
	controlPlane string
	timeout      time.Duration
	verbosity    int
}

// NewCommand returns the proxy-status command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "proxy-status",
		Short: "Show whether each proxy is in sync with the control plane (like istioctl proxy-status)",
		Long: `proxy-status lists the proxies connected to the control plane in istioctl proxy-status's table: name
(POD.NAMESPACE), cluster, control plane instance, version and the xDS types each subscribes to.
With --verbosity 1, one column per type says whether the proxy acknowledged the latest config:
SYNCED (age since the push), STALE (sent, not acknowledged yet), ERROR (rejected; the proxy keeps its
previous config), NOT SENT, or IGNORED (not subscribed).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), env, flags)
		},
	}
	cmd.Flags().StringVar(&flags.controlPlane, "controlplane", "", "base URL of the control plane's debug endpoints (e.g. "+DefaultControlPlane+"); default: the lab's control plane through the API server")
	cmd.Flags().DurationVar(&flags.timeout, "timeout", 10*time.Second, "how long to wait for the control plane")
	// istioctl's -v; here -v is meshlab's own log verbosity, so only the long form.
	cmd.Flags().IntVar(&flags.verbosity, "verbosity", 0, "verbosity level for the table, as istioctl's: 0=default, 1=show all xDS types")
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
	return Write(env.Streams.Out, status, time.Now(), flags.verbosity > 0)
}

// Fetch reads the sync status from the control plane at baseURL.
func Fetch(ctx context.Context, client *http.Client, baseURL string) (xds.SyncStatus, error) {
	var status xds.SyncStatus
	url := strings.TrimSuffix(baseURL, "/") + xds.MeshlabSynczPath
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

// coreTypes come first, in this order, wherever istioctl lists types; any other type follows, sorted by URL.
var coreTypes = []string{xdstype.Cluster, xdstype.Listener, xdstype.Endpoint, xdstype.Route}

// verboseTypes are the types istioctl's verbose table always has a column for (with ECDS), whether or not
// a proxy watches them.
var verboseTypes = []string{xdstype.Cluster, xdstype.Listener, xdstype.Endpoint, xdstype.Route,
	"type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"}

// Write prints status as `istioctl proxy-status` does: NAME CLUSTER ISTIOD VERSION SUBSCRIBED TYPES, one
// row per proxy sorted by name; with verbose, istioctl's `--verbosity 1` table, one column per type.
func Write(w io.Writer, status xds.SyncStatus, now time.Time, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	proxies := slices.Clone(status.Proxies)
	slices.SortStableFunc(proxies, func(a, b xds.ProxyStatus) int { return strings.Compare(a.DisplayName(), b.DisplayName()) })
	if !verbose {
		fmt.Fprintln(tw, "NAME\tCLUSTER\tISTIOD\tVERSION\tSUBSCRIBED TYPES")
		for _, p := range proxies {
			var subscribed []string
			for _, t := range p.Types {
				subscribed = append(subscribed, t.TypeURL)
			}
			slices.SortFunc(subscribed, compareTypes)
			types := "0"
			if len(subscribed) > 0 {
				for i, t := range subscribed {
					subscribed[i] = shortType(t)
				}
				types = fmt.Sprintf("%d (%s)", len(subscribed), strings.Join(subscribed, ","))
			}
			fmt.Fprintln(tw, strings.Join([]string{p.DisplayName(), p.Cluster, status.ControlPlane, p.Version, types}, "\t"))
		}
		return tw.Flush()
	}
	columns := slices.Clone(verboseTypes)
	for _, p := range proxies {
		for _, t := range p.Types {
			if !slices.Contains(columns, t.TypeURL) {
				columns = append(columns, t.TypeURL)
			}
		}
	}
	slices.Sort(columns) // istioctl sorts the verbose columns by type URL
	header := []string{"NAME", "CLUSTER"}
	for _, t := range columns {
		header = append(header, shortType(t))
	}
	fmt.Fprintln(tw, strings.Join(append(header, "ISTIOD", "VERSION"), "\t"))
	for _, p := range proxies {
		row := []string{p.DisplayName(), p.Cluster}
		for _, t := range columns {
			ts, ok := p.Type(t)
			row = append(row, Cell(ts, ok, now))
		}
		fmt.Fprintln(tw, strings.Join(append(row, status.ControlPlane, p.Version), "\t"))
	}
	return tw.Flush()
}

// compareTypes orders type URLs as istioctl lists a proxy's subscribed types: CDS, LDS, EDS, RDS, then the
// rest by URL.
func compareTypes(a, b string) int {
	ia, ib := slices.Index(coreTypes, a), slices.Index(coreTypes, b)
	switch {
	case ia >= 0 && ib >= 0:
		return ia - ib
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	}
	return strings.Compare(a, b)
}

// shortType is istioctl's name for a type: its short name where Istio has one, else the URL.
func shortType(typeURL string) string {
	switch typeURL {
	case xdstype.Cluster, xdstype.Listener, xdstype.Endpoint, xdstype.Route, xdstype.Secret, xdstype.Address, xdstype.Authorization:
		return xdstype.Short(typeURL)
	case "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig":
		return "ECDS"
	}
	return typeURL
}

// Cell is one type's state in istioctl's verbose table: IGNORED (the proxy does not watch the type),
// NOT SENT (nothing sent yet), and else the CSDS status with the age of the last push in brackets:
// SYNCED (acknowledged), STALE (sent, not acknowledged yet) or ERROR (rejected; the proxy keeps its
// previous config).
func Cell(t xds.TypeStatus, subscribed bool, now time.Time) string {
	if !subscribed {
		return "IGNORED"
	}
	var st string
	switch t.State() {
	case xds.Synced:
		st = "SYNCED"
	case xds.Stale:
		st = "STALE"
	case xds.Nacked:
		st = "ERROR"
	default:
		return "NOT SENT"
	}
	if !t.LastPush.IsZero() {
		st += " (" + duration.HumanDuration(now.Sub(t.LastPush)) + ")"
	}
	return st
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
	clients, err := cliutil.Clients(env)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reaching %s: %w", cliutil.Target(env), err)}
	}
	status, err := labclient.Syncz(ctx, clients.Kube)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reading the control plane's sync status: %w", err)}
	}
	env.Logger.V(1)("%d proxies connected to %s", len(status.Proxies), status.ControlPlane)
	return Write(env.Streams.Out, status, time.Now(), flags.verbosity > 0)
}
