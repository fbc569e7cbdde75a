package scenarios

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// A wait that runs out reports what the last good read of syncz showed, even when the final read died with
// the deadline (what CI saw under load: "rate: Wait(n=1) would exceed context deadline" hid which waypoint
// had no proxy).
func TestSettleTimeoutKeepsTheLastGoodReading(t *testing.T) {
	reads := 0
	syncz := func(ctx context.Context) (xds.SyncStatus, error) {
		reads++
		if reads > 1 {
			<-ctx.Done()
			return xds.SyncStatus{}, errors.New("client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline")
		}
		return xds.SyncStatus{}, nil
	}
	_, err := Settle(context.Background(), syncz, []ProxySet{Waypoint("never-converges", "echo-waypoint")}, time.Now(), 0, 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "waypoint/never-converges/echo-waypoint: no proxy connected") || !strings.Contains(err.Error(), "the last read of syncz failed: client rate limiter") {
		t.Errorf("err = %v, want the waypoint that was missing and the last read's failure", err)
	}

	never := func(context.Context) (xds.SyncStatus, error) {
		return xds.SyncStatus{}, errors.New("connection refused")
	}
	if _, err := Settle(context.Background(), never, nil, time.Now(), 0, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not settled after 300ms: connection refused") {
		t.Errorf("no good read at all: %v", err)
	}
}
