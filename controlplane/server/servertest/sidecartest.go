// Package servertest runs a control plane for sidecar tests: the real ingest store, generators and xDS
// server over objects decoded from YAML, and the real CA with its gRPC certificate service, on listeners
// the test chooses (loopback, or inside a network namespace). Proxies reach it only through ADS and the CA
// API, exactly as they reach the live control plane.
package servertest

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/server"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
	"github.com/meshlab/meshlab/identity/ca"
)

// ControlPlane is a running test control plane.
type ControlPlane struct {
	CA    *ca.CA
	Store *ingest.Store
	XDS   *xds.Server
	// PlainAddr serves ADS without TLS; TLSAddr serves ADS and the CA service over TLS (like 15012).
	PlainAddr, TLSAddr string
}

// Options say where to listen; empty addresses are not served.
type Options struct {
	// Listen opens listeners; nil is net.Listen.
	Listen             func(network, addr string) (net.Listener, error)
	PlainAddr, TLSAddr string
}

// Token is the bearer token the test CA service (and the debug xDS types on TLSAddr, see
// server.DebugAccess) accept for namespace/serviceAccount: the string "namespace/serviceAccount" itself (a
// stand-in for TokenReview).
func Token(namespace, serviceAccount string) string { return namespace + "/" + serviceAccount }

// Start decodes yaml into the store, checks that the model has no problems, and serves; changes made to
// Store afterwards are pushed. Everything stops at the end of t.
func Start(t testing.TB, yaml string, o Options) *ControlPlane {
	t.Helper()
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	store := ingest.NewStore()
	objs, _, err := ingest.Decode("servertest.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("servertest: decoding objects: %v", err)
	}
	for _, obj := range objs {
		if _, err := store.Add(obj); err != nil {
			t.Fatalf("servertest: adding %s: %v", obj.GetName(), err)
		}
	}
	if probs := model.Build(store.Objects()).Problems; len(probs) > 0 {
		t.Fatalf("servertest: the model has problems: %v", probs)
	}
	authority, err := ca.New(ca.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The stand-in for TokenReview: the token "namespace/serviceAccount" proves that service account.
	authn := caserver.AuthenticatorFunc(func(_ context.Context, token string) (caserver.Caller, error) {
		ns, sa, ok := strings.Cut(token, "/")
		if !ok {
			return caserver.Caller{}, errors.New("servertest: token is not namespace/serviceaccount")
		}
		return caserver.Caller{Namespace: ns, ServiceAccount: sa}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	gen := xdsgen.New(store)
	srv := xds.NewServer(gen, xds.WithDebounce(0, 0),
		xds.WithDebugAuthorizer(server.DebugAccess(authn, mesh.Namespace)))
	// Later changes to Store are pushed, as the control plane pushes its informers' changes.
	store.OnChange(func(ev ingest.Event) {
		if req := gen.PushRequestFor(ev); req != nil {
			srv.ConfigUpdate(req)
		}
	})
	srv.Start(ctx)
	cp := &ControlPlane{CA: authority, Store: store, XDS: srv}
	var servers []*grpc.Server
	t.Cleanup(func() {
		for _, g := range servers {
			g.Stop()
		}
		cancel()
	})
	if o.PlainAddr != "" {
		l, err := o.Listen("tcp", o.PlainAddr)
		if err != nil {
			t.Fatalf("servertest: %v", err)
		}
		g := grpc.NewServer()
		srv.Register(g)
		servers = append(servers, g)
		go g.Serve(l)
		cp.PlainAddr = l.Addr().String()
	}
	if o.TLSAddr != "" {
		tlsCfg, err := caserver.ServerTLSConfig(ctx, authority, mesh.ControlPlaneID)
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
		srv.Register(g)
		svc, err := caserver.NewServer(caserver.Options{CA: authority, Authenticator: authn})
		if err != nil {
			t.Fatal(err)
		}
		svc.Register(g)
		l, err := o.Listen("tcp", o.TLSAddr)
		if err != nil {
			t.Fatalf("servertest: %v", err)
		}
		servers = append(servers, g)
		go g.Serve(l)
		cp.TLSAddr = l.Addr().String()
	}
	return cp
}
