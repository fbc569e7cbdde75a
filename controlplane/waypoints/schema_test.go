package waypoints

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/meshlab/meshlab/controlplane/crds"
)

// TestWaypointClassPassesTheCRD checks the GatewayClass the controller creates against the Gateway API
// CRD the lab installs, with the API server's own validation: a description over the CRD's 64 characters
// once made every create fail, and with it every scenario needing waypoints.
func TestWaypointClassPassesTheCRD(t *testing.T) {
	schema, err := crds.SchemaFor("gateway.networking.k8s.io", "GatewayClass", "v1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(WaypointClass())
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	if errs := schema.Check(context.Background(), obj); len(errs) > 0 {
		t.Errorf("the istio-waypoint GatewayClass is invalid for the installed CRD: %v", errs.ToAggregate())
	}
}
