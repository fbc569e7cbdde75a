// Package echo implements `meshlab echo server|client|manifest`: the stand-in for Istio's echo app that the
// Gateway API conformance suite's mesh tests deploy and exec into (package echo has the protocol), and the
// small test server a user deploys as their own app (`echo manifest` prints one version of it). In
// the stand-in image (`meshlab image build --echo-as REF`) the binary is also installed as `server` (the
// entrypoint) and `client` (what the suite runs with kubectl exec); cli.Main maps those names here.
package echo

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/echo"
	"github.com/meshlab/meshlab/image"
	"github.com/meshlab/meshlab/manifests"
)

// NewCommand returns the echo command with its server and client subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "A small test server (and client) answering with its pod, namespace, version, the request's headers and the caller's identity",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newServerCommand(env), newClientCommand(env), newManifestCommand(env))
	return cmd
}

func newServerCommand(env cliutil.Env) *cobra.Command {
	var opts echo.ServerOptions
	var grpc []int
	var crt, key, cluster string
	cmd := &cobra.Command{
		Use:   "server [--port P]... [--tcp P]... [--tls P]...",
		Short: "Answer HTTP requests with echo lines: version, pod, namespace, request headers, peer identity",
		Long: `server answers every HTTP request with one field a line: the fields Istio's echo server writes
(ServiceVersion, ServicePort, StatusCode, URL, Host, Method, Proto, IP, RequestHeader=K:V per header value,
Hostname, the pod name), then Namespace and PeerIdentity: the caller's identity as the proxy in front of the
app forwards it (the URI of the last X-Forwarded-Client-Cert element; empty when no proxy set one).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if len(grpc) > 0 {
				env.Logger.Warnf("gRPC ports %v are not served by meshlab's echo stand-in", grpc)
			}
			opts.Hostname, _ = os.Hostname()
			if opts.Namespace == "" {
				opts.Namespace = os.Getenv("POD_NAMESPACE")
			}
			opts.Logf = env.Logger.V(0)
			return echo.Serve(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&opts.HTTPPorts, "port", nil, "HTTP port (repeatable; default 8080)")
	f.IntSliceVar(&opts.TCPPorts, "tcp", nil, "TCP echo port (repeatable)")
	f.IntSliceVar(&opts.TLSPorts, "tls", nil, "ports Istio's echo serves with TLS (accepted, not served)")
	f.IntSliceVar(&grpc, "grpc", nil, "gRPC port (accepted, not served)")
	f.StringVar(&opts.Version, "version", os.Getenv("VERSION"), "written as ServiceVersion (default $VERSION)")
	f.StringVar(&opts.Namespace, "namespace", "", "written as Namespace (default $POD_NAMESPACE)")
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

func newManifestCommand(env cliutil.Env) *cobra.Command {
	opts := manifests.EchoOptions{}
	cmd := &cobra.Command{
		Use:   "manifest [--name echo] [--namespace NS] [--version v1] [--port 8080] [--replicas 1] [--service=true]",
		Short: "Print a ServiceAccount, Service and Deployment running one version of the echo server",
		Long: `manifest prints the echo app as YAML to apply with meshlab up --with (or kubectl): a ServiceAccount
and a Service (port http) named --name, and a Deployment NAME-VERSION labelled app=NAME, version=VERSION
running meshlab echo server. Print one manifest per version; pass --service=false to all but one of them, or
apply the identical ServiceAccount and Service twice. The image is meshlab.local/meshlab:lab, the stable
name meshlab up gives the lab's own meshlab image in every node.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errs := validation.IsDNS1035Label(opts.Name); len(errs) > 0 {
				return cliutil.Usagef("--name %q: %s", opts.Name, strings.Join(errs, "; "))
			}
			if errs := validation.IsDNS1123Label(opts.Name + "-" + opts.Version); len(errs) > 0 {
				return cliutil.Usagef("--version %q: the Deployment name %s-%s is not a valid name: %s", opts.Version, opts.Name, opts.Version, strings.Join(errs, "; "))
			}
			if opts.Namespace != "" {
				if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
					return cliutil.Usagef("--namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
				}
			}
			if opts.Port < 1 || opts.Port > 65535 {
				return cliutil.Usagef("--port must be 1-65535, got %d", opts.Port)
			}
			if opts.Replicas < 0 {
				return cliutil.Usagef("--replicas must be 0 or more, got %d", opts.Replicas)
			}
			for i, obj := range manifests.Echo(opts) {
				b, err := specOnly(obj)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(env.Streams.Out, "---")
				}
				env.Streams.Out.Write(b)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "echo", "app name: ServiceAccount, Service and label app")
	f.StringVar(&opts.Namespace, "namespace", "", "namespace to write into the objects (default: none, the namespace they are applied in)")
	f.StringVar(&opts.Version, "version", "v1", "version: label version and the Deployment NAME-VERSION")
	f.Int32Var(&opts.Port, "port", echo.DefaultHTTPPort, "HTTP port of the server and the Service")
	f.Int32Var(&opts.Replicas, "replicas", 1, "replicas of the Deployment")
	f.BoolVar(&opts.Service, "service", true, "also print the ServiceAccount and the Service")
	f.StringVar(&opts.Image, "image", image.LabRef, "container image")
	return cmd
}

// specOnly is obj as YAML without what only the API server writes (status, creationTimestamp), which
// would be noise in a manifest a user keeps.
func specOnly(obj any) ([]byte, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	if md, ok := u["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(u)
}
