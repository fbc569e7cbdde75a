package integration

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// grpcWaypoint runs the reviews waypoint's generated config in the L7 engine, as generatedWaypoint does,
// for the greeter gRPC service: each greeter pod is a real gRPC server (grpc-go, h2c) that answers the
// health service, and any other method with an empty message; every answer carries the pod's version and
// the x-route request header it saw as response headers. Weighted choices take the first cluster.
func grpcWaypoint(t *testing.T, snap *model.Snapshot) (addr string) {
	t.Helper()
	greeter := snap.Service("greeter.default.svc.cluster.local")
	backends := map[string]string{} // pod IP -> gRPC server address
	for _, ep := range greeter.Endpoints {
		version := ep.Labels()["version"]
		tag := func(ctx context.Context) {
			md, _ := metadata.FromIncomingContext(ctx)
			grpc.SetHeader(ctx, metadata.Pairs("x-version", version, "x-seen-route", first(md.Get("x-route"))))
		}
		srv := grpc.NewServer(
			grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				tag(ctx)
				return h(ctx, req)
			}),
			grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				tag(ss.Context())
				return h(srv, ss)
			}),
			grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
				if err := ss.RecvMsg(&emptypb.Empty{}); err != nil {
					return err
				}
				return ss.SendMsg(&emptypb.Empty{})
			}),
		)
		hs := health.NewServer()
		hs.SetServingStatus("greeter", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(srv, hs)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(srv.Stop)
		backends[ep.IP] = l.Addr().String()
	}
	return serveWaypoint(t, snap, netip.AddrPortFrom(netip.MustParseAddr(greeter.VIPs[0]), 9090), backends, func() uint64 { return 0 })
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestGeneratedGRPCRoute sends real gRPC calls (unary, server streaming, an error status in trailers)
// through the engine running the waypoint config generated for a GRPCRoute, and checks which pod answered
// each and what it saw.
func TestGeneratedGRPCRoute(t *testing.T) {
	addr := grpcWaypoint(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.GreeterGRPCRoute))
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("greeter.default.svc.cluster.local:9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	check := func(what, version, route string, md metadata.MD) {
		t.Helper()
		if v, r := first(md.Get("x-version")), first(md.Get("x-seen-route")); v != version || r != route {
			t.Errorf("%s: answered by %q with x-route %q, want %q with %q", what, v, r, version, route)
		}
	}

	var md metadata.MD
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "greeter"}, grpc.Header(&md))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
	check("Check (rule health: prefix /grpc.health.v1.Health/)", "v1", "health", md)
	if got := first(md.Get("x-routed-by")); got != "grpcroute-health" {
		t.Errorf("Check: response header x-routed-by %q, want the ResponseHeaderModifier's grpcroute-health", got)
	}

	md = nil
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "true")
	if _, err := client.Check(canary, &healthpb.HealthCheckRequest{Service: "greeter"}, grpc.Header(&md)); err != nil {
		t.Fatalf("Check with x-canary: %v", err)
	}
	check("Check with x-canary: true (rule canary-check: exact method and header)", "v2", "", md)

	// A status in the trailers, not a transport error: the engine carries gRPC's trailers through.
	md = nil
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nothing-by-this-name"}, grpc.Header(&md))
	if status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown health service: %v, want NotFound from the backend", err)
	}

	md = nil
	if _, err := client.List(ctx, &healthpb.HealthListRequest{}, grpc.Header(&md)); err != nil {
		t.Fatalf("List: %v", err)
	}
	check("List (rule list-anywhere: a method in any service, before the service prefix)", "v2", "", md)

	md = nil
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "greeter"})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: first message %v %v", r, err)
	}
	if md, err = stream.Header(); err != nil {
		t.Fatal(err)
	}
	check("Watch, server streaming (rule watch: regular expressions)", "v2", "", md)

	md = nil
	if err := conn.Invoke(ctx, "/echo.Other/Say", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Header(&md)); err != nil {
		t.Fatalf("/echo.Other/Say: %v", err)
	}
	check("another service (rule split, 90/10: the first cluster)", "v1", "", md)
}
