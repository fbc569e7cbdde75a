// Package echo implements `meshlab echo server|client`, the stand-in for Istio's echo app that the
// Gateway API conformance suite's mesh tests deploy and exec into (package echo has the protocol). In
// the stand-in image (`meshlab image build --echo-as REF`) the binary is also installed as `server` (the
// entrypoint) and `client` (what the suite runs with kubectl exec); cli.Main maps those names here.
package echo

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/echo"
)

// NewCommand returns the echo command with its server and client subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Stand-in for Istio's echo app (server and client) for the Gateway API conformance suite",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newServerCommand(env), newClientCommand(env))
	return cmd
}

func newServerCommand(env cliutil.Env) *cobra.Command {
	var opts echo.ServerOptions
	var grpc []int
	var crt, key, cluster string
	cmd := &cobra.Command{
		Use:   "server [--port P]... [--tcp P]... [--tls P]...",
		Short: "Answer HTTP requests with the echo lines the conformance suite parses",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if len(grpc) > 0 {
				env.Logger.Warnf("gRPC ports %v are not served by meshlab's echo stand-in", grpc)
			}
			opts.Hostname, _ = os.Hostname()
			opts.Logf = env.Logger.V(0)
			return echo.Serve(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&opts.HTTPPorts, "port", nil, "HTTP port (repeatable; default 8080)")
	f.IntSliceVar(&opts.TCPPorts, "tcp", nil, "TCP echo port (repeatable)")
	f.IntSliceVar(&opts.TLSPorts, "tls", nil, "ports Istio's echo serves with TLS (accepted, not served)")
	f.IntSliceVar(&grpc, "grpc", nil, "gRPC port (accepted, not served)")
	f.StringVar(&opts.Version, "version", "", "written as ServiceVersion")
	f.StringVar(&crt, "crt", "", "TLS certificate (accepted, unused)")
	f.StringVar(&key, "key", "", "TLS key (accepted, unused)")
	f.StringVar(&cluster, "cluster", "", "cluster name (accepted, unused)")
	return cmd
}

func newClientCommand(env cliutil.Env) *cobra.Command {
	var opts echo.ClientOptions
	cmd := &cobra.Command{
		Use:   "client URL [--method M] [-H KEY:VALUE]... [--count N]",
		Short: "Send requests without following redirects and print the responses as Istio's echo client does",
		Args:  cliutil.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.URL = args[0]
			}
			if opts.URL == "" {
				return cliutil.Usagef("client needs a URL")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return echo.RunClient(ctx, opts, env.Streams.Out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.URL, "url", "", "URL (instead of the argument)")
	f.StringVar(&opts.Method, "method", "GET", "HTTP method")
	f.StringArrayVarP(&opts.Headers, "header", "H", nil, "request header KEY:VALUE (repeatable)")
	f.IntVar(&opts.Count, "count", 1, "number of requests")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Second, "timeout per request")
	return cmd
}
