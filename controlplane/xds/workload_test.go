package xds

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/xdstype"
)

// snapshotGen serves ztunnel one workload Address per pod in its snapshot; Prepare builds the snapshot
// (a pod name -> IP map) from a counter, so tests can see which snapshot a push used.
type snapshotGen struct {
	prepares atomic.Int32
	pods     atomic.Pointer[map[string]string]
}

func (g *snapshotGen) Prepare(*PushRequest) (any, error) {
	g.prepares.Add(1)
	return *g.pods.Load(), nil
}

func (g *snapshotGen) Affects(*Proxy, *PushRequest) bool { return true }

func (g *snapshotGen) Generate(p *Proxy, typeURL string, req *PushRequest) (Result, error) {
	pods := req.Snapshot.(map[string]string)
	var res Result
	for name, ip := range pods {
		w := &workloadapi.Workload{Uid: "Kubernetes//Pod/default/" + name, Name: name, Namespace: "default",
			Addresses: [][]byte{netip.MustParseAddr(ip).AsSlice()}, Node: p.Name, TunnelProtocol: workloadapi.TunnelProtocol_HBONE}
		r, err := Marshal(w.Uid, &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}})
		if err != nil {
			return Result{}, err
		}
		res.Resources = append(res.Resources, r)
	}
	return res, nil
}

func TestWorkloadAPIOverDeltaWithSnapshots(t *testing.T) {
	g := &snapshotGen{}
	g.pods.Store(&map[string]string{"reviews-v1": "10.244.1.5"})
	s := NewServer(g, WithDebounce(0, 0))
	d := newDeltaClient(t, dial(t, startServer(t, s)), "ztunnel/meshlab-worker")
	d.subscribe(xdstype.Address)
	r := d.recv()
	if r.TypeUrl != xdstype.Address || len(r.Resources) != 1 {
		t.Fatalf("got %s with %d resources, want one %s", r.TypeUrl, len(r.Resources), xdstype.Address)
	}
	addr := &workloadapi.Address{}
	if err := r.Resources[0].Resource.UnmarshalTo(addr); err != nil {
		t.Fatalf("UnmarshalTo() = %v", err)
	}
	if w := addr.GetWorkload(); w.GetName() != "reviews-v1" || w.GetNode() != "meshlab-worker" {
		t.Errorf("workload = %v", w)
	}
	d.ack(r)
	if n := g.prepares.Load(); n != 1 {
		t.Errorf("Prepare called %d times before the first push, want 1", n)
	}

	// A full push prepares a new snapshot, which the generation uses.
	g.pods.Store(&map[string]string{"reviews-v1": "10.244.1.5", "ratings-v1": "10.244.1.6"})
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Pod", "default", "ratings-v1"}))
	r = d.recv()
	if got := resourceNames(r.Resources); len(got) != 1 || got[0] != "Kubernetes//Pod/default/ratings-v1" {
		t.Errorf("pushed %v, want the new workload alone", got)
	}
	d.ack(r)
	// An endpoint-only push reuses the snapshot: nothing new is prepared, nothing changes.
	s.ConfigUpdate(NewPushRequest(false, "endpoint", ConfigKey{"Pod", "default", "ratings-v1"}))
	d.expectNone(200 * time.Millisecond)
	if n := g.prepares.Load(); n != 2 {
		t.Errorf("Prepare called %d times, want 2 (initial and the full push)", n)
	}
}
