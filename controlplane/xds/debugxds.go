package xds

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"strings"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/version"
)

// Istio's debug types over ADS, which istioctl asks istiod (proxy-status, version, proxy-status <pod>):
//
//   - istio.io/debug/syncz: one envoy.service.status.v3.ClientConfig per connected proxy — its node (ID as
//     name.namespace, metadata CLUSTER_ID, NAMESPACE, ISTIO_VERSION) and per type a generic_xds_config with
//     the type URL, SYNCED, STALE, NOT_SENT or ERROR (a NACK), when it was last sent, the version it
//     acknowledged and the NACK's error. It is /debug/syncz's data (Server.SyncStatus), in CSDS's shape.
//   - istio.io/debug/config_dump, asked with one resource name (the proxy's ID or name.namespace): the
//     pieces of an Envoy admin ConfigDump (clusters, listeners, routes, secrets, extension configs) holding
//     what was last sent to that proxy, which istioctl diffs against the proxy's own /config_dump. An
//     unknown proxy gets an empty response, as from istiod.
//
// Every response carries control_plane.identifier, the JSON istioctl reads the control plane's instance
// and version from (ControlPlaneInstance). Other istio.io/debug types get an empty response.
//
// A stream that only asks debug questions (istioctl's) is not a proxy: it never joins the push machinery
// and never shows in syncz. A proxy may ask them on its own stream too. Each debug request is answered
// (Istio's clients do not ACK debug responses; an ACK of one of this stream's debug nonces is ignored).
// istioctl asks on state-of-the-world streams; delta streams are answered too, the names asked for being
// those subscribed, syncz's resources named by node ID.
//
// Who may ask is the DebugAuthorizer's decision (WithDebugAuthorizer), made once per stream at its first
// debug request; it also scopes the answers to one namespace's proxies.

// DebugAuthorizer decides whether the client of a stream, presenting itself as client (from its node), may
// read the debug types: it returns the namespace whose proxies the client may see ("" for all), or an
// error, which ends the stream (a gRPC status error keeps its code; anything else is PermissionDenied).
// ctx is the stream's: its peer and metadata say how the client connected and what it presented.
type DebugAuthorizer func(ctx context.Context, client *Proxy) (namespace string, err error)

// WithDebugAuthorizer sets who may read the debug types; without it, every client may read everything.
func WithDebugAuthorizer(a DebugAuthorizer) Option { return func(s *Server) { s.debugAuth = a } }

// ControlPlaneComponent is the component a debug response's identifier names: meshlab's control plane.
const ControlPlaneComponent = "meshlab-controlplane"

// ControlPlaneInstance is the JSON of control_plane.identifier in debug responses, in the shape of istiod's
// (pilot/pkg/xds.IstioControlPlaneInstance): istioctl shows ID in proxy-status's ISTIOD column and
// Component and Info.Version in `istioctl version`.
type ControlPlaneInstance struct {
	Component string
	ID        string
	Info      BuildInfo
}

// BuildInfo is Istio's version.BuildInfo, filled with meshlab's build.
type BuildInfo struct {
	Version       string `json:"version"`
	GitRevision   string `json:"revision"`
	GolangVersion string `json:"golang_version"`
	BuildStatus   string `json:"status"`
	GitTag        string `json:"tag"`
}

// ControlPlaneVersion is the version the control plane reports (istioctl version's "control plane
// version"): meshlab's own, marked as meshlab's so that nobody takes the lab for an Istio release.
func ControlPlaneVersion() string { return "meshlab-" + version.String() }

func buildInfo() BuildInfo {
	return BuildInfo{Version: ControlPlaneVersion(), GitRevision: version.Revision(), GolangVersion: runtime.Version(), BuildStatus: "Clean", GitTag: version.String()}
}

// ControlPlane returns the control_plane field of the server's debug responses.
func (s *Server) ControlPlane() *core.ControlPlane {
	b, _ := json.Marshal(ControlPlaneInstance{
		Component: ControlPlaneComponent,
		ID:        s.id,
		Info:      buildInfo(),
	})
	return &core.ControlPlane{Identifier: string(b)}
}

// debugStream is the debug side of one stream; send writes an answer in the stream's flavour.
type debugStream struct {
	s    *Server
	ctx  context.Context
	send func(typeURL, version, nonce string, resources []*discovery.Resource) error

	node   *core.Node          // the first node the stream presented
	scope  *string             // the authorizer's answer, once asked
	nonces map[string]struct{} // nonces of the debug answers sent
}

// sotwDebug is the debug side of a state-of-the-world stream.
func (s *Server) sotwDebug(ctx context.Context, send func(*discovery.DiscoveryResponse) error) func(*discovery.DiscoveryRequest) (bool, error) {
	d := &debugStream{s: s, ctx: ctx, send: func(typeURL, version, nonce string, resources []*discovery.Resource) error {
		resp := &discovery.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce, ControlPlane: s.ControlPlane()}
		for _, r := range resources {
			resp.Resources = append(resp.Resources, r.GetResource())
		}
		return send(resp)
	}}
	return func(req *discovery.DiscoveryRequest) (bool, error) {
		return d.handle(req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetResourceNames())
	}
}

// deltaDebug is the debug side of a delta stream: the names asked for are those subscribed.
func (s *Server) deltaDebug(ctx context.Context, send func(*discovery.DeltaDiscoveryResponse) error) func(*discovery.DeltaDiscoveryRequest) (bool, error) {
	d := &debugStream{s: s, ctx: ctx, send: func(typeURL, version, nonce string, resources []*discovery.Resource) error {
		return send(&discovery.DeltaDiscoveryResponse{TypeUrl: typeURL, SystemVersionInfo: version, Nonce: nonce, Resources: resources, ControlPlane: s.ControlPlane()})
	}}
	return func(req *discovery.DeltaDiscoveryRequest) (bool, error) {
		return d.handle(req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetResourceNamesSubscribe())
	}
}

// handle answers a request if it is a debug request; handled is false for anything else, which the proxy
// side of the stream handles. It runs on the stream goroutine, as every send does.
func (d *debugStream) handle(node *core.Node, typeURL, responseNonce string, names []string) (handled bool, err error) {
	if d.node == nil && node != nil {
		d.node = node
	}
	if !xdstype.IsDebug(typeURL) {
		return false, nil
	}
	if _, ack := d.nonces[responseNonce]; ack {
		return true, nil
	}
	if d.node.GetId() == "" {
		return true, status.Error(codes.InvalidArgument, "first request carries no node id")
	}
	client := NewProxy(d.node)
	if d.scope == nil {
		scope := ""
		if d.s.debugAuth != nil {
			if scope, err = d.s.debugAuth(d.ctx, client); err != nil {
				d.s.logf("xds: refusing %s to %s: %v", typeURL, client.ID, err)
				if _, ok := status.FromError(err); !ok {
					err = status.Error(codes.PermissionDenied, err.Error())
				}
				return true, err
			}
		}
		d.scope = &scope
	}
	var res []*discovery.Resource
	switch typeURL {
	case xdstype.DebugSyncz:
		res, err = d.s.clientConfigs(*d.scope)
		d.s.logf("xds: %s asked for syncz: %d proxies", client.ID, len(res))
	case xdstype.DebugConfigDump:
		if len(names) == 1 {
			res, err = d.s.envoyConfigDump(names[0], *d.scope)
			d.s.logf("xds: %s asked for the config dump of %s: %d parts", client.ID, names[0], len(res))
		} else {
			d.s.logf("xds: %s asked for a config dump of %d proxies; answering none", client.ID, len(names))
		}
	}
	if err != nil {
		return true, status.Errorf(codes.Internal, "%s: %v", typeURL, err)
	}
	nonce := d.s.nextNonce()
	if d.nonces == nil {
		d.nonces = map[string]struct{}{}
	}
	d.nonces[nonce] = struct{}{}
	return true, d.send(typeURL, d.s.debugVersion(), nonce, res)
}

// debugVersion is the version_info of debug responses: the sequence number of the current snapshot.
func (s *Server) debugVersion() string {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	return strconv.FormatUint(s.snapshotSeq, 10)
}

// clientConfigs is the syncz answer: a ClientConfig per connected proxy of namespace ("" for all), named
// by its node ID.
func (s *Server) clientConfigs(namespace string) ([]*discovery.Resource, error) {
	var out []*discovery.Resource
	for _, ps := range s.SyncStatus().Proxies {
		if namespace != "" && ps.Namespace != namespace {
			continue
		}
		cc := ClientConfig(ps)
		a, err := anypb.New(cc)
		if err != nil {
			return nil, err
		}
		out = append(out, &discovery.Resource{Name: cc.GetNode().GetId(), Resource: a})
	}
	return out, nil
}

// ClientConfig is one proxy's sync state as istiod's syncz reports it (CSDS's ClientConfig): the node,
// named as istioctl names proxies, with the metadata istioctl reads, and a generic_xds_config per type,
// sorted by type URL.
func ClientConfig(ps ProxyStatus) *statusv3.ClientConfig {
	meta, _ := structpb.NewStruct(map[string]any{
		"CLUSTER_ID":    ps.Cluster,
		"NAMESPACE":     ps.Namespace,
		"ISTIO_VERSION": ps.Version,
	})
	cc := &statusv3.ClientConfig{Node: &core.Node{Id: ps.DisplayName(), Metadata: meta}}
	for _, t := range ps.Types {
		g := &statusv3.ClientConfig_GenericXdsConfig{
			TypeUrl:      t.TypeURL,
			VersionInfo:  t.AckedVersion,
			ConfigStatus: configStatus(t.State()),
		}
		if !t.LastPush.IsZero() {
			g.LastUpdated = timestamppb.New(t.LastPush)
		}
		if t.NackError != "" {
			g.ErrorState = &admin.UpdateFailureState{LastUpdateAttempt: timestamppb.New(t.LastNack), Details: t.NackError, VersionInfo: t.NackVersion}
		}
		cc.GenericXdsConfigs = append(cc.GenericXdsConfigs, g)
	}
	slices.SortFunc(cc.GenericXdsConfigs, func(a, b *statusv3.ClientConfig_GenericXdsConfig) int {
		return strings.Compare(a.TypeUrl, b.TypeUrl)
	})
	return cc
}

// configStatus is CSDS's name for a sync state; a NACK is ERROR, as istiod reports it.
func configStatus(s SyncState) statusv3.ConfigStatus {
	switch s {
	case Synced:
		return statusv3.ConfigStatus_SYNCED
	case Stale:
		return statusv3.ConfigStatus_STALE
	case Nacked:
		return statusv3.ConfigStatus_ERROR
	}
	return statusv3.ConfigStatus_NOT_SENT
}

// envoyConfigDump is the config_dump answer: the parts of an Envoy admin ConfigDump holding what was last
// sent to the proxy named id, as istiod's (no endpoints, as Envoy's /config_dump without include_eds),
// unnamed. nil when no such proxy of namespace ("" for any) is connected.
func (s *Server) envoyConfigDump(id, namespace string) ([]*discovery.Resource, error) {
	c := s.findConnection(id)
	if c == nil || (namespace != "" && c.proxy.Namespace != namespace) {
		return nil, nil
	}
	ps, sent := c.snapshot()
	version := map[string]string{}
	updated := map[string]*timestamppb.Timestamp{}
	for _, t := range ps.Types {
		version[t.TypeURL] = t.SentVersion
		if !t.LastPush.IsZero() {
			updated[t.TypeURL] = timestamppb.New(t.LastPush)
		}
	}
	clusters := &admin.ClustersConfigDump{VersionInfo: version[xdstype.Cluster]}
	for _, r := range sent[xdstype.Cluster] {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &admin.ClustersConfigDump_DynamicCluster{
			VersionInfo: version[xdstype.Cluster], Cluster: r.GetResource(), LastUpdated: updated[xdstype.Cluster]})
	}
	listeners := &admin.ListenersConfigDump{VersionInfo: version[xdstype.Listener]}
	for _, r := range sent[xdstype.Listener] {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &admin.ListenersConfigDump_DynamicListener{
			Name: r.GetName(),
			ActiveState: &admin.ListenersConfigDump_DynamicListenerState{
				VersionInfo: version[xdstype.Listener], Listener: r.GetResource(), LastUpdated: updated[xdstype.Listener]},
		})
	}
	routes := &admin.RoutesConfigDump{}
	for _, r := range sent[xdstype.Route] {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &admin.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: version[xdstype.Route], RouteConfig: r.GetResource(), LastUpdated: updated[xdstype.Route]})
	}
	secrets := &admin.SecretsConfigDump{}
	for _, r := range sent[xdstype.Secret] {
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &admin.SecretsConfigDump_DynamicSecret{
			Name: r.GetName(), VersionInfo: version[xdstype.Secret], Secret: r.GetResource(), LastUpdated: updated[xdstype.Secret]})
	}
	var out []*discovery.Resource
	for _, part := range []proto.Message{clusters, listeners, routes, secrets, &admin.EcdsConfigDump{}} {
		a, err := anypb.New(part)
		if err != nil {
			return nil, err
		}
		out = append(out, &discovery.Resource{Resource: a})
	}
	return out, nil
}
