package xds_test

import (
	"context"
	"log"
	"net"
	"net/http"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// Example wires a server: a generator, the cache it shares with the server, gRPC on 15010 and the debug
// endpoints on 15014, then a config change.
func Example() {
	cache := xds.NewCache()
	gen := xds.GeneratorFuncs{
		AffectsFunc: func(p *xds.Proxy, req *xds.PushRequest) bool {
			return req.IsUpdated(xds.ConfigKey{Kind: "Service", Namespace: p.Namespace, Name: "reviews"})
		},
		GenerateFunc: func(p *xds.Proxy, typeURL string, req *xds.PushRequest) (xds.Result, error) {
			if typeURL != xdstype.Cluster {
				return xds.Result{}, nil
			}
			key := "cds/" + p.Namespace + "/reviews" // plus the versions of every input, in real generators
			r, ok := cache.Get(key)
			if !ok {
				var err error
				if r, err = xds.Marshal("reviews", &cluster.Cluster{Name: "reviews"}); err != nil {
					return xds.Result{}, err
				}
				cache.Add(key, []xds.ConfigKey{{Kind: "Service", Namespace: p.Namespace, Name: "reviews"}}, req.CacheToken, r)
			}
			return xds.Result{Resources: []*discovery.Resource{r}}, nil
		},
	}
	s := xds.NewServer(gen, xds.WithCache(cache), xds.WithID("istiod-0"))
	ctx := context.Background()
	s.Start(ctx)

	g := grpc.NewServer()
	s.Register(g)
	lis, err := net.Listen("tcp", ":15010")
	if err != nil {
		log.Fatal(err)
	}
	go g.Serve(lis)

	mux := http.NewServeMux()
	s.RegisterHTTP(mux) // /debug/syncz, /debug/config_dump?proxy=ID, /metrics
	go http.ListenAndServe(":15014", mux)

	// An informer saw the reviews Service change.
	s.ConfigUpdate(xds.NewPushRequest(true, "config", xds.ConfigKey{Kind: "Service", Namespace: "default", Name: "reviews"}))
}
