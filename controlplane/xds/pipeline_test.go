package xds

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestPushRequestMerge(t *testing.T) {
	a := ConfigKey{"Service", "default", "a"}
	b := ConfigKey{"Service", "default", "b"}
	t0 := time.Unix(100, 0)
	t1 := time.Unix(200, 0)
	tests := []struct {
		name       string
		x, y       *PushRequest
		full       bool
		configs    []ConfigKey
		everything bool
		start      time.Time
	}{
		{"endpoint updates stay incremental", &PushRequest{ConfigsUpdated: set(a), Start: t1}, &PushRequest{ConfigsUpdated: set(b), Start: t0}, false, []ConfigKey{a, b}, false, t0},
		{"a full request makes the merge full", &PushRequest{ConfigsUpdated: set(a), Start: t0}, &PushRequest{Full: true, ConfigsUpdated: set(b), Start: t1}, true, []ConfigKey{a, b}, false, t0},
		{"full with no configs means everything", &PushRequest{Full: true, Start: t0}, &PushRequest{ConfigsUpdated: set(b), Start: t1}, true, nil, true, t0},
		{"nil side copies the other", nil, &PushRequest{ConfigsUpdated: set(a), Start: t1}, false, []ConfigKey{a}, false, t1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.x.Merge(tt.y)
			if m.Full != tt.full {
				t.Errorf("Full = %t, want %t", m.Full, tt.full)
			}
			if m.everything() != tt.everything {
				t.Errorf("everything() = %t, want %t", m.everything(), tt.everything)
			}
			for _, k := range tt.configs {
				if !m.IsUpdated(k) {
					t.Errorf("merged request lacks %v", k)
				}
			}
			if len(m.ConfigsUpdated) != len(tt.configs) {
				t.Errorf("ConfigsUpdated = %v, want %v", m.ConfigsUpdated, tt.configs)
			}
			if !m.Start.Equal(tt.start) {
				t.Errorf("Start = %v, want the earliest %v", m.Start, tt.start)
			}
			if tt.x != nil && len(tt.x.ConfigsUpdated) > 1 {
				t.Error("Merge modified its receiver")
			}
		})
	}
}

func set(keys ...ConfigKey) map[ConfigKey]struct{} {
	m := map[ConfigKey]struct{}{}
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

func TestDebounceWindows(t *testing.T) {
	tests := []struct {
		name         string
		quiet, max   time.Duration
		every        time.Duration // interval between requests
		count        int
		wantFlushes  int
		wantAtLeastN bool // wantFlushes is a minimum (max window cuts a long burst)
	}{
		{"a burst within the quiet window is one push", 200 * time.Millisecond, 5 * time.Second, 0, 50, 1, false},
		{"no debounce pushes each request", 0, 0, 0, 5, 5, false},
		{"the max window cuts a burst that never goes quiet", 60 * time.Millisecond, 150 * time.Millisecond, 20 * time.Millisecond, 30, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			in := make(chan *PushRequest)
			var mu sync.Mutex
			var flushes []int
			go debounce(ctx, in, tt.quiet, tt.max, func(_ *PushRequest, events int) {
				mu.Lock()
				flushes = append(flushes, events)
				mu.Unlock()
			})
			for range tt.count {
				in <- NewPushRequest(true, "config")
				time.Sleep(tt.every)
			}
			time.Sleep(tt.quiet + 50*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			total := 0
			for _, n := range flushes {
				total += n
			}
			if total != tt.count {
				t.Errorf("flushed %d requests, want %d", total, tt.count)
			}
			if tt.wantAtLeastN {
				if len(flushes) < tt.wantFlushes || len(flushes) == tt.count {
					t.Errorf("flushes = %v, want at least %d and fewer than %d", flushes, tt.wantFlushes, tt.count)
				}
			} else if len(flushes) != tt.wantFlushes {
				t.Errorf("flushes = %v, want %d", flushes, tt.wantFlushes)
			}
		})
	}
}

func TestPushQueue(t *testing.T) {
	q := newPushQueue()
	a, b := &connection{id: "a"}, &connection{id: "b"}
	k := func(n string) *PushRequest { return &PushRequest{ConfigsUpdated: set(ConfigKey{"S", "ns", n})} }
	q.Enqueue(a, k("1"))
	q.Enqueue(b, k("1"))
	q.Enqueue(a, k("2")) // merges into a's pending push
	c, r, _ := q.Dequeue()
	if c != a || len(r.ConfigsUpdated) != 2 {
		t.Fatalf("Dequeue() = %s with %v, want a with two configs", c.id, r.ConfigsUpdated)
	}
	q.Enqueue(a, k("3")) // a is in flight: held aside
	q.Enqueue(a, k("4"))
	c, _, _ = q.Dequeue()
	if c != b {
		t.Fatalf("Dequeue() = %s, want b", c.id)
	}
	if q.Pending() != 0 {
		t.Fatalf("Pending() = %d while a is in flight, want 0", q.Pending())
	}
	q.MarkDone(a)
	c, r, _ = q.Dequeue()
	if c != a || len(r.ConfigsUpdated) != 2 {
		t.Fatalf("after MarkDone: Dequeue() = %s with %v, want a with configs 3 and 4", c.id, r.ConfigsUpdated)
	}
	q.MarkDone(a)
	q.MarkDone(b)
	q.Enqueue(b, k("5"))
	q.Remove(b)
	q.Close()
	if _, _, ok := q.Dequeue(); ok {
		t.Error("Dequeue() after Close returned a push")
	}
}

func TestNewProxy(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{MetaNamespace: "bookinfo", MetaName: "reviews-v1-abc", MetaKind: KindSidecar})
	tests := []struct {
		node                  *core.Node
		kind, namespace, name string
	}{
		{&core.Node{Id: "waypoint/default/waypoint"}, KindWaypoint, "default", "waypoint"},
		{&core.Node{Id: "ztunnel/meshlab-worker"}, KindZtunnel, "", "meshlab-worker"},
		{&core.Node{Id: "sidecar~10.244.1.5~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local"}, KindSidecar, "bookinfo", "reviews-v1-abc"},
		{&core.Node{Id: "opaque-id", Metadata: md}, KindSidecar, "bookinfo", "reviews-v1-abc"},
	}
	for _, tt := range tests {
		p := NewProxy(tt.node)
		if p.Kind != tt.kind || p.Namespace != tt.namespace || p.Name != tt.name {
			t.Errorf("NewProxy(%q) = %s/%s/%s, want %s/%s/%s", tt.node.Id, p.Kind, p.Namespace, p.Name, tt.kind, tt.namespace, tt.name)
		}
	}
}

func TestProxyWatch(t *testing.T) {
	p := NewProxy(&core.Node{Id: "sidecar/default/x"})
	if !p.setWatch(xdstype.Endpoint, []string{"b", "a"}) {
		t.Error("first setWatch reported no change")
	}
	if p.setWatch(xdstype.Endpoint, []string{"a", "b"}) {
		t.Error("same names reported as a change")
	}
	names, wildcard, ok := p.Watched(xdstype.Endpoint)
	if !ok || wildcard || !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("Watched() = %v %t %t", names, wildcard, ok)
	}
	p.setWatch(xdstype.Cluster, nil)
	if !p.Wants(xdstype.Cluster, "anything") {
		t.Error("an empty SotW subscription is not a wildcard")
	}
	if got := p.WatchedTypes(); !slices.Equal(got, []string{xdstype.Cluster, xdstype.Endpoint}) {
		t.Errorf("WatchedTypes() = %v, want CDS then EDS", got)
	}
	added, first := p.updateWatch(xdstype.Address, []string{"ns/a"}, nil)
	if !first || !slices.Equal(added, []string{"ns/a"}) || p.Wants(xdstype.Address, "ns/b") {
		t.Errorf("delta subscribe: added %v first %t", added, first)
	}
}
