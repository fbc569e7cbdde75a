package waypoints

import (
	"context"
	"encoding/json"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

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
	for _, class := range []*gwv1.GatewayClass{WaypointClass(), IngressClass()} {
		b, err := json.Marshal(class)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		if errs := schema.Check(context.Background(), obj); len(errs) > 0 {
			t.Errorf("the %s GatewayClass is invalid for the installed CRD: %v", class.Name, errs.ToAggregate())
		}
	}
}
