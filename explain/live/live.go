// Package live is explain's ConfigSource for a running lab. The mesh objects are what the control plane
// sees: the API server's objects listed into the control plane's store by its own informers
// (kube.List) and built into a snapshot. Each proxy's config is what that proxy holds: its own admin
// /config_dump (Envoy's shape for waypoints, sidecars and ingress gateways, read as `meshlab proxy-config`
// reads it; ztunnel's shape for ztunnels, read back into workload API resources and translated as
// ztunnel's xDS client does), fetched through the API server's port-forward. Only when a proxy's dump
// cannot be read does the source fall back to generating that proxy's config from the snapshot, and it
// says so in a note.
package live

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model"
	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
	"github.com/meshlab/meshlab/explain"
)

// Dumps reads running proxies' admin config dumps: the seam tests replace.
type Dumps interface {
	// Envoy returns /config_dump?include_eds of the proxy in pod namespace/pod.
	Envoy(ctx context.Context, namespace, pod string) ([]byte, error)
	// Ztunnel returns /config_dump of the ztunnel on node.
	Ztunnel(ctx context.Context, node string) ([]byte, error)
}

// Source is a ConfigSource on a running lab. It reads each proxy's dump once.
type Source struct {
	ctx   context.Context
	snap  *model.Snapshot
	dumps Dumps

	mu       sync.Mutex
	envoy    map[string]l7.Config
	ztunnels map[string]ztunnelConfig
	origins  []string
}

type ztunnelConfig struct {
	cfg      ztunnel.Config
	warnings []string
}

var _ explain.ConfigSource = (*Source)(nil)

// New returns a source on the mesh snap describes, reading proxies' dumps with dumps. ctx bounds every read.
func New(ctx context.Context, snap *model.Snapshot, dumps Dumps) *Source {
	return &Source{ctx: ctx, snap: snap, dumps: dumps, envoy: map[string]l7.Config{}, ztunnels: map[string]ztunnelConfig{}}
}

// Connect lists the lab's objects as the control plane sees them and returns a source reading proxies'
// dumps through the API server, with the warnings of objects the store refused. It starts reading every
// ztunnel's dump at once (a path crosses one or two of them, and reading in parallel keeps explain fast).
func Connect(ctx context.Context, cfg *rest.Config) (*Source, []string, error) {
	clients, err := kube.NewClients(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, warnings, err := kube.List(ctx, clients, 20*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the lab's objects: %w", err)
	}
	snap := model.Build(store.Objects())
	for _, p := range snap.Problems {
		warnings = append(warnings, p.String())
	}
	s := New(ctx, snap, &PortForward{Config: cfg, Clients: clients})
	return s, warnings, nil
}

// Mesh returns the snapshot of the lab's objects.
func (s *Source) Mesh() *model.Snapshot { return s.snap }

// Origins says where each proxy's config came from, one line per proxy read, in the order read.
func (s *Source) Origins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.origins...)
}

func (s *Source) origin(format string, args ...any) {
	s.origins = append(s.origins, fmt.Sprintf(format, args...))
}

// Envoy returns the config p's pod holds, from its /config_dump; when that cannot be read, the config the
// control plane generates for p, with a note saying so.
func (s *Source) Envoy(p model.Proxy) (l7.Config, error) {
	s.mu.Lock()
	cfg, ok := s.envoy[p.ID()]
	s.mu.Unlock()
	if ok {
		return cfg, nil
	}
	resolved, err := s.snap.Resolve(p)
	if err != nil {
		return l7.Config{}, err
	}
	pod := resolved.Pod
	if p.Kind == model.KindSidecar {
		pod = p.Name
	}
	var readErr error
	if pod == "" {
		readErr = fmt.Errorf("it has no running pod")
	} else {
		cfg, readErr = s.readEnvoy(resolved.Namespace, pod)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if readErr != nil {
		if cfg, err = (explain.Offline{Snapshot: s.snap}).Envoy(p); err != nil {
			return l7.Config{}, err
		}
		s.origin("%s: generated from the lab's objects (its config dump could not be read: %v)", p.ID(), readErr)
	} else {
		s.origin("%s: /config_dump of pod %s/%s", p.ID(), resolved.Namespace, pod)
	}
	s.envoy[p.ID()] = cfg
	return cfg, nil
}

func (s *Source) readEnvoy(namespace, pod string) (l7.Config, error) {
	body, err := s.dumps.Envoy(s.ctx, namespace, pod)
	if err != nil {
		return l7.Config{}, err
	}
	cd, err := cprender.ParseConfigDump(body)
	if err != nil {
		return l7.Config{}, err
	}
	d, err := tables.FromConfigDump(cd)
	if err != nil {
		return l7.Config{}, err
	}
	return l7.Config{Listeners: d.Listeners, Routes: d.Routes, Clusters: d.Clusters, Endpoints: d.Endpoints}, nil
}

// Ztunnel returns the config the ztunnel on node holds, from its /config_dump; when that cannot be read,
// the config the control plane generates for it, with a note saying so.
func (s *Source) Ztunnel(node string) (ztunnel.Config, []string, error) {
	s.mu.Lock()
	z, ok := s.ztunnels[node]
	s.mu.Unlock()
	if ok {
		return z.cfg, z.warnings, nil
	}
	cfg, warnings, readErr := s.readZtunnel(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	if readErr != nil {
		var err error
		if cfg, warnings, err = (explain.Offline{Snapshot: s.snap}).Ztunnel(node); err != nil {
			return ztunnel.Config{}, nil, err
		}
		s.origin("ztunnel/%s: generated from the lab's objects (its config dump could not be read: %v)", node, readErr)
	} else {
		s.origin("ztunnel/%s: /config_dump of its ztunnel pod", node)
	}
	s.ztunnels[node] = ztunnelConfig{cfg, warnings}
	return cfg, warnings, nil
}

func (s *Source) readZtunnel(node string) (ztunnel.Config, []string, error) {
	body, err := s.dumps.Ztunnel(s.ctx, node)
	if err != nil {
		return ztunnel.Config{}, nil, err
	}
	var d configdump.Dump
	if err := json.Unmarshal(body, &d); err != nil {
		return ztunnel.Config{}, nil, fmt.Errorf("decoding its config dump: %w", err)
	}
	addrs, authz, warnings, err := d.WorkloadAPI()
	if err != nil {
		return ztunnel.Config{}, nil, fmt.Errorf("reading its config dump: %w", err)
	}
	cfg, more, err := workloadxds.Translate(addrs, authz)
	if err != nil {
		return ztunnel.Config{}, nil, fmt.Errorf("translating its config dump: %w", err)
	}
	return cfg, append(warnings, more...), nil
}

// Prefetch reads the dumps of every ztunnel and of every L7 proxy named at once, in parallel, so that
// Explain then finds them read. Errors are not returned: a proxy whose dump cannot be read falls back as
// Envoy and Ztunnel say.
func (s *Source) Prefetch(proxies ...model.Proxy) {
	var wg sync.WaitGroup
	for _, node := range s.snap.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = s.Ztunnel(node)
		}()
	}
	for _, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Envoy(p)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	sort.Strings(s.origins) // reads finished in any order
	s.mu.Unlock()
}

// PortForward reads dumps from the pods' loopback admin port (15000) through the API server.
type PortForward struct {
	Config  *rest.Config
	Clients *kube.Clients
}

// Envoy implements Dumps.
func (f *PortForward) Envoy(ctx context.Context, namespace, pod string) ([]byte, error) {
	return labclient.PodGet(ctx, f.Config, f.Clients.Kube, namespace, pod, labclient.AdminPort, "/config_dump?include_eds")
}

// Ztunnel implements Dumps.
func (f *PortForward) Ztunnel(ctx context.Context, node string) ([]byte, error) {
	pod, err := labclient.ZtunnelPod(ctx, f.Clients.Kube, node)
	if err != nil {
		return nil, err
	}
	return labclient.PodGet(ctx, f.Config, f.Clients.Kube, pod.Namespace, pod.Name, labclient.AdminPort, "/config_dump")
}
