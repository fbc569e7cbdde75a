package configgen

import (
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
)

func TestHBONECapable(t *testing.T) {
	for _, tc := range []struct {
		name string
		wl   *model.Workload
		want bool
	}{
		{"unknown pod", nil, false},
		{"plain pod", &model.Workload{Labels: map[string]string{"app": "a"}}, false},
		{"ambient pod", &model.Workload{Ambient: true}, true},
		{"injected pod", &model.Workload{Labels: map[string]string{LabelTLSMode: "istio"}}, true},
		{"injected pod with tlsMode disabled", &model.Workload{Labels: map[string]string{LabelTLSMode: "disabled"}}, false},
		{"waypoint pod in an ambient namespace", &model.Workload{Ambient: true, Labels: map[string]string{model.LabelGatewayName: "wp"}}, false},
	} {
		if got := HBONECapable(tc.wl); got != tc.want {
			t.Errorf("%s: HBONECapable() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
