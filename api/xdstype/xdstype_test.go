package xdstype_test

import (
	"testing"

	"github.com/meshlab/meshlab/api/xdstype"
)

func TestShort(t *testing.T) {
	for typeURL, want := range map[string]string{
		xdstype.Cluster: "CDS", xdstype.Listener: "LDS", xdstype.Endpoint: "EDS", xdstype.Route: "RDS",
		xdstype.Secret: "SDS", xdstype.Address: "WDS", xdstype.Authorization: "WADS",
		"type.googleapis.com/istio.debug.Syncz": "istio.debug.Syncz",
	} {
		if got := xdstype.Short(typeURL); got != want {
			t.Errorf("Short(%s) = %s, want %s", typeURL, got, want)
		}
	}
}

func TestIsDebug(t *testing.T) {
	for typeURL, want := range map[string]bool{
		xdstype.DebugSyncz: true, xdstype.DebugConfigDump: true, xdstype.DebugPrefix: true,
		"istio.io/debugger": false, xdstype.Cluster: false, "": false,
	} {
		if got := xdstype.IsDebug(typeURL); got != want {
			t.Errorf("IsDebug(%q) = %t, want %t", typeURL, got, want)
		}
	}
}
