package diff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/render"
)

// Resource types, in the order a report lists them: Envoy's four xDS types, then what ztunnel receives
// (workloads and services, both istio.workload.Address, and istio.security.Authorization).
const (
	TypeListener      = "LDS"
	TypeRoute         = "RDS"
	TypeCluster       = "CDS"
	TypeEndpoint      = "EDS"
	TypeWorkload      = "workload"
	TypeService       = "service"
	TypeAuthorization = "authorization"
)

var typeOrder = map[string]int{TypeListener: 0, TypeRoute: 1, TypeCluster: 2, TypeEndpoint: 3, TypeWorkload: 4, TypeService: 5, TypeAuthorization: 6}

// Change says what happened to a proxy or a resource.
type Change string

// Changes.
const (
	Added   Change = "added"
	Removed Change = "removed"
	Changed Change = "changed"
)

// Report is the difference between two worlds, proxy by proxy.
type Report struct {
	// Proxies are the proxies whose config would change (or which would appear or disappear), by ID.
	Proxies []ProxyDiff `json:"proxies"`
	// Untouched are the IDs of the proxies whose config stays exactly the same.
	Untouched []string `json:"untouched"`
}

// Changed reports whether any proxy's config changes.
func (r *Report) Changed() bool { return len(r.Proxies) > 0 }

// ProxyDiff is what changes for one proxy.
type ProxyDiff struct {
	Proxy     string         `json:"proxy"`  // waypoint/NS/NAME, gateway/NS/NAME, sidecar/NS/POD or ztunnel/NODE
	Change    Change         `json:"change"` // added (only in the new world), removed, or changed
	Resources []ResourceDiff `json:"resources"`
}

// ResourceDiff is one resource added, removed or changed.
type ResourceDiff struct {
	Type   string `json:"type"` // TypeListener ... TypeAuthorization
	Name   string `json:"name"`
	Change Change `json:"change"`
	// Fields are the changed fields of a changed resource, by path in the JSON `meshlab render` prints.
	Fields []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one field (or list element) whose value differs. Old is absent when the field was
// added, New when it was removed. Values are JSON values as `meshlab render` prints them.
type FieldChange struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// Compute compares what every proxy receives in snapshot old and in snapshot new. When only is not empty,
// just those proxies are compared (by ID; each must exist in one of the worlds).
func Compute(old, new *model.Snapshot, only []model.Proxy) (*Report, error) {
	proxies, err := selectProxies(old, new, only)
	if err != nil {
		return nil, err
	}
	// Proxies are generated and compared in parallel, as the xDS server generates for its streams: a
	// snapshot is immutable once built.
	diffs := make([]ProxyDiff, len(proxies))
	errs := make([]error, len(proxies))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(proxies)) {
		wg.Go(func() {
			for i := range next {
				diffs[i], errs[i] = compareProxy(old, new, proxies[i])
			}
		})
	}
	for i := range proxies {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Report{Proxies: []ProxyDiff{}, Untouched: []string{}}
	for _, pd := range diffs {
		if len(pd.Resources) == 0 && pd.Change == Changed {
			r.Untouched = append(r.Untouched, pd.Proxy)
			continue
		}
		r.Proxies = append(r.Proxies, pd)
	}
	return r, nil
}

// compareProxy generates p's config in both worlds and compares it.
func compareProxy(old, new *model.Snapshot, p model.Proxy) (ProxyDiff, error) {
	pd := ProxyDiff{Proxy: p.ID(), Change: Changed}
	before, err := resourcesOf(old, p)
	if err != nil {
		return pd, fmt.Errorf("%s in the base world: %w", p.ID(), err)
	}
	after, err := resourcesOf(new, p)
	if err != nil {
		return pd, fmt.Errorf("%s in the new world: %w", p.ID(), err)
	}
	switch {
	case before == nil:
		pd.Change = Added
	case after == nil:
		pd.Change = Removed
	}
	pd.Resources, err = compare(before, after)
	if err != nil {
		return pd, fmt.Errorf("%s: %w", p.ID(), err)
	}
	return pd, nil
}

// selectProxies returns the proxies of both worlds (or those of only), sorted by ID.
func selectProxies(old, new *model.Snapshot, only []model.Proxy) ([]model.Proxy, error) {
	byID := map[string]model.Proxy{}
	for _, s := range []*model.Snapshot{old, new} {
		for _, p := range Proxies(s) {
			byID[p.ID()] = p
		}
	}
	var out []model.Proxy
	if len(only) == 0 {
		for _, p := range byID {
			out = append(out, p)
		}
	} else {
		seen := map[string]bool{}
		for _, want := range only {
			p, ok := byID[want.ID()]
			if !ok {
				return nil, &model.NotFoundError{Msg: fmt.Sprintf("no proxy %s in the base or the new world", want.ID())}
			}
			if !seen[p.ID()] {
				seen[p.ID()] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

// resource is one generated resource, keyed by type and name; encode returns the JSON `meshlab render`
// prints for it (the form fields are compared in).
type resource struct {
	typ, name string
	equal     func(other resource) bool
	encode    func() ([]byte, error)
	value     any // the generated value, for equal
}

type resourceKey struct{ typ, name string }

// resourcesOf runs the generators for p in s (render.Generate, the code `meshlab render` and the xDS
// server run) and indexes what p would receive; nil when p does not exist in s.
func resourcesOf(s *model.Snapshot, p model.Proxy) (map[resourceKey]resource, error) {
	g, err := render.Generate(s, p)
	if err != nil {
		var nf *model.NotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, err
	}
	out := map[resourceKey]resource{}
	if g.Envoy != nil {
		addEnvoy(out, g.Envoy)
		return out, nil
	}
	z := g.Ztunnel
	for _, w := range z.Workloads {
		addJSON(out, TypeWorkload, w.Namespace+"/"+w.Name, w)
	}
	for _, svc := range z.Services {
		addJSON(out, TypeService, svc.Namespace+"/"+svc.Hostname, svc)
	}
	for _, pol := range z.Policies {
		addJSON(out, TypeAuthorization, pol.Namespace+"/"+pol.Name, pol)
	}
	return out, nil
}

func addEnvoy(out map[resourceKey]resource, cfg *configgen.Config) {
	add := func(typ string, m interface {
		proto.Message
		GetName() string
	}) {
		out[resourceKey{typ, m.GetName()}] = protoResource(typ, m.GetName(), m)
	}
	for _, l := range cfg.Listeners {
		add(TypeListener, l)
	}
	for _, r := range cfg.Routes {
		add(TypeRoute, r)
	}
	for _, c := range cfg.Clusters {
		add(TypeCluster, c)
	}
	for _, e := range cfg.Endpoints {
		out[resourceKey{TypeEndpoint, e.GetClusterName()}] = protoResource(TypeEndpoint, e.GetClusterName(), e)
	}
}

func protoResource(typ, name string, m proto.Message) resource {
	return resource{typ: typ, name: name, value: m,
		equal:  func(o resource) bool { om, ok := o.value.(proto.Message); return ok && proto.Equal(m, om) },
		encode: func() ([]byte, error) { return render.MarshalProto(m, render.FormatJSON) },
	}
}

// addJSON indexes a ztunnel resource. Its structs are compared with reflect.DeepEqual (cheap: a ztunnel
// receives every workload and service of the mesh) and, when that finds a difference, field by field in
// their JSON encoding, which is what `meshlab render` prints (a nil and an empty list print alike, so a
// difference the encoding does not show is no change).
func addJSON(out map[resourceKey]resource, typ, name string, v any) {
	out[resourceKey{typ, name}] = resource{typ: typ, name: name, value: v,
		equal:  func(o resource) bool { return reflect.DeepEqual(v, o.value) },
		encode: func() ([]byte, error) { return json.Marshal(v) },
	}
}

// compare lists the resources added, removed and changed between before and after, in type then name order.
func compare(before, after map[resourceKey]resource) ([]ResourceDiff, error) {
	keys := map[resourceKey]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := make([]resourceKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.typ != b.typ {
			return typeOrder[a.typ] < typeOrder[b.typ]
		}
		return a.name < b.name
	})
	out := []ResourceDiff{}
	for _, k := range sorted {
		b, inBefore := before[k]
		a, inAfter := after[k]
		switch {
		case !inBefore:
			out = append(out, ResourceDiff{Type: k.typ, Name: k.name, Change: Added})
		case !inAfter:
			out = append(out, ResourceDiff{Type: k.typ, Name: k.name, Change: Removed})
		case !b.equal(a):
			fields, err := fieldChanges(b, a)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", k.typ, k.name, err)
			}
			if len(fields) > 0 { // equal as printed: not a change anyone could see
				out = append(out, ResourceDiff{Type: k.typ, Name: k.name, Change: Changed, Fields: fields})
			}
		}
	}
	return out, nil
}

func fieldChanges(before, after resource) ([]FieldChange, error) {
	bj, err := before.encode()
	if err != nil {
		return nil, err
	}
	aj, err := after.encode()
	if err != nil {
		return nil, err
	}
	bt, err := decodeTree(bj)
	if err != nil {
		return nil, err
	}
	at, err := decodeTree(aj)
	if err != nil {
		return nil, err
	}
	return Fields(bt, at), nil
}

// decodeTree parses JSON keeping numbers as written (json.Number), so 64-bit values stay exact.
func decodeTree(js []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding generated config: %w", err)
	}
	return v, nil
}
