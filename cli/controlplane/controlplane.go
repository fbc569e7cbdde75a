// Package controlplane is `meshlab controlplane`: the process of the istiod Deployment in
// istio-system. It runs controlplane/server with the CA service (controlplane/caserver) on the same
// TLS gRPC listener as xDS, like istiod's 15012.
package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/server"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/identity/ca"
)

type flagpole struct {
	grpcAddr, plainAddr, httpAddr string
	webhookAddr                   string
	namespace, id, image          string
	controlPlaneAddr              string
	kubeconfig                    string
	quiet, max                    time.Duration
	concurrency                   int
	syncTimeout                   time.Duration
}

// NewCommand returns the controlplane command.
func NewCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run meshlab's istiod-like control plane (the istio-system Deployment's process)",
		Long: `Runs the control plane: informers into the config store, one immutable snapshot per full push,
xDS for waypoints and sidecars and the workload API for ztunnel over ADS, the CA, and the waypoint
controller. Ports: 15012 gRPC over TLS (xDS and the CA), 15010 plaintext gRPC (xDS only, for tests and
debugging), 15014 HTTP (/ready, /metrics, /version and /debug/syncz (istiod's shapes), /debug/meshlab/syncz, /debug/config_dump?proxy=ID, /debug/problems),
15017 HTTPS: the sidecar injection webhook (/inject) and the validating webhook (/validate), registered
as the MutatingWebhookConfiguration istio-sidecar-injector and the ValidatingWebhookConfiguration istio-validator-<namespace> once
they answer.

In a pod it uses the in-cluster config; elsewhere --kubeconfig (or the global one). One replica: there is
no leader election.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if f.kubeconfig == "" {
				f.kubeconfig = env.Globals.Kubeconfig
			}
			return runE(ctx, env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.grpcAddr, "grpc-address", server.DefaultGRPCAddr, "TLS gRPC listener (xDS and the CA)")
	fl.StringVar(&f.plainAddr, "plaintext-grpc-address", server.DefaultPlainGRPCAddr, `plaintext gRPC listener, xDS only ("" disables it)`)
	fl.StringVar(&f.httpAddr, "http-address", server.DefaultHTTPAddr, "debug, metrics and readiness listener")
	fl.StringVar(&f.webhookAddr, "webhook-address", server.DefaultWebhookAddr, `sidecar injection webhook (HTTPS; "" disables it, as does an empty --image)`)
	fl.StringVar(&f.namespace, "namespace", cliutil.EnvOr("POD_NAMESPACE", server.DefaultNamespace), "the control plane's namespace (CA Secret)")
	fl.StringVar(&f.id, "id", cliutil.EnvOr("POD_NAME", server.ServiceAccount), "instance name shown by proxy-status")
	fl.StringVar(&f.image, "image", os.Getenv("MESHLAB_IMAGE"), `meshlab image for waypoint Deployments ("" disables the waypoint controller)`)
	fl.StringVar(&f.controlPlaneAddr, "controlplane-address", mesh.XDSAddress, "address waypoint pods dial for xDS and the CA")
	fl.StringVar(&f.kubeconfig, "controlplane-kubeconfig", "", "kubeconfig (default: in-cluster, else the global --kubeconfig)")
	fl.DurationVar(&f.quiet, "debounce-after", xds.DefaultDebounceQuiet, "push once no change arrived for this long")
	fl.DurationVar(&f.max, "debounce-max", xds.DefaultDebounceMax, "push at the latest this long after the first pending change")
	fl.IntVar(&f.concurrency, "push-concurrency", xds.DefaultConcurrency, "proxies pushed at once")
	fl.DurationVar(&f.syncTimeout, "sync-timeout", 2*time.Minute, "how long the informers may take to list the cluster")
	return cmd
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		return nil, cliutil.Usagef("not in a cluster: pass --kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	if f.quiet < 0 || f.max < 0 || f.concurrency < 1 {
		return cliutil.Usagef("--debounce-after and --debounce-max must not be negative, --push-concurrency must be at least 1")
	}
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	clients, err := kube.NewClients(cfg)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	s := server.New(clients, server.Options{
		GRPCAddr: f.grpcAddr, PlainGRPCAddr: f.plainAddr, HTTPAddr: f.httpAddr,
		Namespace: f.namespace, ID: f.id, Image: f.image, ControlPlaneAddress: f.controlPlaneAddr,
		DebounceQuiet: f.quiet, DebounceMax: f.max, PushConcurrency: f.concurrency, SyncTimeout: f.syncTimeout,
		Logf: logf,
		TLSConfig: func(ctx context.Context, c *ca.CA) (*tls.Config, error) {
			return caserver.ServerTLSConfig(ctx, c, mesh.ControlPlaneID)
		},
		RegisterGRPC: []func(*grpc.Server, *ca.CA){func(g *grpc.Server, c *ca.CA) {
			svc, err := caserver.NewServer(caserver.Options{
				CA:            c,
				Authenticator: caserver.TokenReviewer{Client: clients.Kube},
				Locator:       caserver.PodLocator{Client: clients.Kube},
				Logf:          logf,
			})
			if err != nil {
				logf("controlplane: CA service disabled: %v", err)
				return
			}
			svc.Register(g)
		}},
	})
	logf("controlplane: starting (grpc %s, plaintext %s, http %s, webhook %s, debounce %s/%s)", f.grpcAddr, f.plainAddr, f.httpAddr, f.webhookAddr, f.quiet, f.max)
	if f.webhookAddr == "" || f.image == "" {
		return s.Run(ctx)
	}
	// The webhook injects sidecars running this same image; it registers itself once it answers.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	webhook := make(chan error, 1)
	go func() {
		webhook <- s.ServeWebhook(ctx, server.WebhookOptions{Addr: f.webhookAddr, Values: inject.Values{ProxyImage: f.image, DiscoveryAddress: f.controlPlaneAddr}})
	}()
	run := make(chan error, 1)
	go func() { run <- s.Run(ctx) }()
	select {
	case err := <-run:
		cancel()
		<-webhook
		return err
	case err := <-webhook: // a webhook that cannot serve is fatal: pods would wait for it
		cancel()
		if rerr := <-run; err == nil {
			err = rerr
		}
		return err
	}
}
