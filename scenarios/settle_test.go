package scenarios

import (
	"testing"

	"github.com/meshlab/meshlab/controlplane/xds"
)

func TestSettleState(t *testing.T) {
	synced := xds.TypeStatus{TypeURL: "cds", Type: "CDS", SentNonce: "2", AckedNonce: "2", AckedVersion: "v2"}
	stale := xds.TypeStatus{TypeURL: "cds", Type: "CDS", SentNonce: "3", AckedNonce: "2", AckedVersion: "v2"}
	nacked := xds.TypeStatus{TypeURL: "cds", Type: "CDS", SentNonce: "3", AckedNonce: "2", AckedVersion: "v2", NackError: "bad"}
	st := func(ts ...xds.TypeStatus) xds.SyncStatus {
		return xds.SyncStatus{Proxies: []xds.ProxyStatus{{ID: "w", Types: ts}}}
	}
	if fp, waiting := settleState(st(synced)); fp == "" || len(waiting) != 0 {
		t.Errorf("synced: %q %v", fp, waiting)
	}
	fpSynced, _ := settleState(st(synced))
	fpStale, waiting := settleState(st(stale))
	if fpSynced == fpStale || len(waiting) != 1 {
		t.Errorf("stale: same fingerprint or not waiting: %v", waiting)
	}
	if _, waiting := settleState(st(nacked)); len(waiting) != 1 || waiting[0] != "w: CDS NACKED (bad)" {
		t.Errorf("nacked: %v", waiting)
	}
}
