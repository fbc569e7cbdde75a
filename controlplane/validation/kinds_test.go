package validation

import (
	"errors"
	"strings"
	"testing"
)

// TestKindsMeshlabReads runs ValidateYAML, what every loader and the webhook run, over a valid and invalid
// examples of each kind meshlab reads, checking each message as a loader prints it (Message).
func TestKindsMeshlabReads(t *testing.T) {
	const (
		vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n"
		dr = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n"
		ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: default}\nspec:\n"
		ig = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress}\nspec:\n"
		gw = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\nspec:\n  gatewayClassName: istio-waypoint\n"
		hr = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: reviews}\nspec:\n  parentRefs: [{name: reviews, kind: Service, group: \"\"}]\n  rules:\n  - backendRefs:\n"
		sv = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n"
		tr = "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: db}\nspec:\n  parentRefs: [{name: db, kind: Service, group: \"\", port: 5432}]\n  rules:\n"
	)
	for _, tc := range []struct {
		name, doc string
		want      []string // the messages, in order; none: valid
	}{
		{"VirtualService", vs + "    - destination: {host: reviews, subset: v1}\n      weight: 90\n    - destination: {host: reviews, subset: v2}\n      weight: 10\n", nil},
		{"VirtualService negative weight", vs + "    - destination: {host: reviews, subset: v1}\n      weight: 110\n    - destination: {host: reviews, subset: v2}\n      weight: -10\n",
			[]string{"spec.http[0].route[1].weight: Invalid value: -10: must not be negative"}},
		{"VirtualService misspelt field", vs + "    - destination: {hots: reviews}\n",
			[]string{`unknown field "spec.http[0].route[0].destination.hots"`, "spec.http[0].route[0].destination.host: Required value"}},
		{"DestinationRule", dr + "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  subsets: [{name: v1, labels: {version: v1}}]\n", nil},
		{"DestinationRule misspelt field", dr + "  trafficPolicy: {loadBalancer: {simpel: ROUND_ROBIN}}\n",
			[]string{`unknown field "spec.trafficPolicy.loadBalancer.simpel"`}},
		{"DestinationRule unknown enum", dr + "  trafficPolicy: {loadBalancer: {simple: FASTEST}}\n",
			[]string{`spec.trafficPolicy.loadBalancer.simple: Unsupported value: "FASTEST"`}},
		{"AuthorizationPolicy", ap + "  action: DENY\n  rules: [{from: [{source: {namespaces: [foo]}}]}]\n", nil},
		{"AuthorizationPolicy misspelt action", ap + "  actoin: DENY\n  rules: [{from: [{source: {namespaces: [foo]}}]}]\n",
			[]string{`unknown field "spec.actoin"`}},
		{"AuthorizationPolicy misspelt metadata", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: default, labelz: {a: b}}\nspec: {}\n",
			[]string{`unknown field "metadata.labelz"`}},
		{"Istio Gateway", ig + "  selector: {istio: ingressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n", nil},
		{"Istio Gateway without servers", ig + "  selector: {istio: ingressgateway}\n",
			[]string{"spec.servers: Required value"}},
		{"Gateway API Gateway", gw + "  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n", nil},
		{"Gateway API Gateway bad listener", gw + "  listeners: [{name: mesh, port: 0, protocol: HBONE}, {name: mesh, port: 15008, protocol: HBONE}]\n",
			[]string{"spec.listeners[0].port: Invalid value: 0: must be between 1 and 65535, inclusive", `spec.listeners[1].name: Duplicate value: "mesh"`}},
		{"Gateway API Gateway misspelt field", gw + "  listeners: [{name: mesh, port: 15008, protocol: HBONE, hostnme: a.b}]\n",
			[]string{`unknown field "spec.listeners[0].hostnme"`}},
		{"GatewayClass without controller", "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\nspec: {}\n",
			[]string{"spec.controllerName: Required value"}},
		{"HTTPRoute", hr + "    - {name: reviews-v1, port: 9080, weight: 90}\n    - {name: reviews-v2, port: 9080, weight: 10}\n", nil},
		{"HTTPRoute negative weight", hr + "    - {name: reviews-v1, port: 9080, weight: 110}\n    - {name: reviews-v2, port: 9080, weight: -10}\n",
			[]string{"spec.rules[0].backendRefs[1].weight: Invalid value: -10: must not be negative"}},
		{"HTTPRoute misspelt field", hr + "    - {name: reviews-v1, port: 9080, wieght: 90}\n",
			[]string{`unknown field "spec.rules[0].backendRefs[0].wieght"`}},
		{"HTTPRoute relative path", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules: [{matches: [{path: {type: PathPrefix, value: api}}]}]\n",
			[]string{`spec.rules[0].matches[0].path.value: Invalid value: "api": a PathPrefix path must start with /`}},
		{"TCPRoute", tr + "  - backendRefs: [{name: db-v1, port: 5432, weight: 80}, {name: db-v2, port: 5432, weight: 20}]\n", nil},
		{"TCPRoute two rules, a Service backend without port", tr + "  - backendRefs: [{name: db-v1}]\n  - backendRefs: [{name: db-v2, port: 5432, weight: -1}]\n",
			[]string{"spec.rules: Invalid value: 2: must have exactly one rule", "spec.rules[0].backendRefs[0].port: Required value: Must have port for Service reference",
				"spec.rules[1].backendRefs[0].weight: Invalid value: -1: must not be negative"}},
		{"TCPRoute without backendRefs", tr + "  - {}\n", []string{"spec.rules[0].backendRefs: Required value"}},
		{"TCPRoute v1alpha2 (no longer served)", strings.Replace(tr, "/v1\n", "/v1alpha2\n", 1) + "  - backendRefs: [{name: db-v1, port: 5432}]\n",
			[]string{`apiVersion: Unsupported value: "gateway.networking.k8s.io/v1alpha2"`}},
		{"Service", sv + "  clusterIP: 10.96.0.1\n  ports: [{name: http, port: 9080}]\n", nil},
		{"Service misspelt field", sv + "  clusterIp: 10.96.0.1\n", []string{`unknown field "spec.clusterIp"`}},
		{"Service bad port and address", sv + "  clusterIP: 10.96.0\n  ports: [{port: 70000}]\n",
			[]string{"spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive", `spec.clusterIP: Invalid value: "10.96.0": must be an IP address or "None"`}},
		{"Namespace bad name", "apiVersion: v1\nkind: Namespace\nmetadata: {name: Shop}\n",
			[]string{`metadata.name: Invalid value: "Shop": a lowercase RFC 1123 label`}},
		{"Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: x}]}\nstatus: {podIP: 10.244.1.2}\n", nil},
		{"Pod bad address", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: x}]}\nstatus: {podIP: 10.244.1}\n",
			[]string{`status.podIP: Invalid value: "10.244.1": must be an IP address`}},
		{"ServiceAccount misspelt field", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\nautomount: true\n",
			[]string{`unknown field "automount"`}},
		{"EndpointSlice bad address type", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IP\nendpoints: [{addresses: [10.0.0.1]}]\n",
			[]string{`addressType: Unsupported value: "IP"`}},
		{"wrong apiVersion", "apiVersion: gateway.networking.k8s.io/v1alpha9\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n",
			[]string{`apiVersion: Unsupported value: "gateway.networking.k8s.io/v1alpha9"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ValidateYAML([]byte(tc.doc))
			var got []string
			if err != nil {
				var invalid *Error
				if !errors.As(err, &invalid) {
					t.Fatalf("error is not a *validation.Error: %v", err)
				}
				for _, fe := range invalid.Errs {
					got = append(got, Message(fe))
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d = %q, want it to start with %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
