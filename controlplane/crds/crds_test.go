package crds_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/crds"
)

// TestVersionsMatchGoMod fails when go.mod moved istio.io/api or sigs.k8s.io/gateway-api without
// `go generate ./controlplane/crds`.
func TestVersionsMatchGoMod(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"istio.io/api": crds.IstioAPIVersion, "sigs.k8s.io/gateway-api": crds.GatewayAPIVersion}
	found := 0
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) < 2 {
			continue
		}
		if f[0] == "replace" || (len(f) > 2 && f[1] == "=>") {
			if _, ok := want[f[0]]; ok {
				t.Errorf("go.mod replaces %s: the generator copies from the replacement; check it by hand", f[0])
			}
			continue
		}
		v, ok := want[f[0]]
		if !ok {
			continue
		}
		found++
		if f[1] != v {
			t.Errorf("go.mod requires %s %s, the embedded CRDs are from %s: run go generate ./controlplane/crds", f[0], f[1], v)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of %v in go.mod", found, want)
	}
}

// TestCRDs decodes every embedded CRD strictly (no field of upstream's YAML is lost on the way to the API
// server), checks each is complete, and that every served version's schema is structural.
func TestCRDs(t *testing.T) {
	all := crds.All()
	var names []string
	for _, crd := range all {
		names = append(names, crd.Name)
		if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
			t.Errorf("%s: TypeMeta %v", crd.Name, crd.TypeMeta)
		}
		if got := crd.Spec.Names.Plural + "." + crd.Spec.Group; got != crd.Name {
			t.Errorf("%s: name must be plural.group, got %s", crd.Name, got)
		}
		for _, n := range []string{crd.Spec.Names.Plural, crd.Spec.Names.Singular, strings.ToLower(crd.Spec.Names.Kind)} {
			if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
				t.Errorf("%s: name %q: %v", crd.Name, n, errs)
			}
		}
		if crd.Spec.Group == crds.GatewayGroup && crd.Annotations["api-approved.kubernetes.io"] == "" {
			t.Errorf("%s: a *.k8s.io CRD needs api-approved.kubernetes.io", crd.Name)
		}
		storage := 0
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				storage++
			}
			if !v.Served {
				continue
			}
			if _, err := crds.NewSchema(v.Schema.OpenAPIV3Schema); err != nil {
				t.Errorf("%s %s: %v", crd.Name, v.Name, err)
			}
		}
		if storage != 1 {
			t.Errorf("%s: %d storage versions", crd.Name, storage)
		}
		// What server-side apply sends is the typed object re-encoded: it must carry everything upstream has.
		b, err := json.Marshal(crd)
		if err != nil {
			t.Fatal(err)
		}
		var back apiextensionsv1.CustomResourceDefinition
		if strict, err := sigsjson.UnmarshalStrict(b, &back); err != nil || len(strict) > 0 {
			t.Errorf("%s: JSON round trip: %v %v", crd.Name, err, strict)
		}
	}
	for _, want := range []string{
		// Every kind the control plane watches (controlplane/kube informers.go) must have its CRD.
		"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
		"virtualservices.networking.istio.io", "destinationrules.networking.istio.io", "authorizationpolicies.security.istio.io",
		// Istio's Gateway API for mesh.
		"grpcroutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io",
		"tcproutes.gateway.networking.k8s.io", "tlsroutes.gateway.networking.k8s.io",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("no CRD %s in %v", want, names)
		}
	}
	if !slices.Equal(names, crds.Names()) {
		t.Errorf("Names() = %v, want %v", crds.Names(), names)
	}
	// Apply order: Gateway API first, GatewayClass before everything.
	if names[0] != "gatewayclasses.gateway.networking.k8s.io" || !strings.HasSuffix(names[len(names)-1], ".istio.io") {
		t.Errorf("order = %v", names)
	}
	// Each call returns new objects.
	all[0].Name = "changed"
	if crds.All()[0].Name == "changed" {
		t.Error("All() shares objects between calls")
	}
}

// TestUpstreamFiles checks the embedded files say where they came from, and that the YAML itself (not only
// what Go types keep of it) is upstream's.
func TestUpstreamFiles(t *testing.T) {
	vs := crds.Find(crds.NetworkingGroup, "VirtualService")
	if vs == nil {
		t.Fatal("no VirtualService CRD")
	}
	if vs.Labels["app"] != "istio-pilot" {
		t.Errorf("VirtualService labels = %v, want istio.io/api's", vs.Labels)
	}
	hr := crds.Find(crds.GatewayGroup, "HTTPRoute")
	if hr == nil || hr.Annotations["gateway.networking.k8s.io/bundle-version"] != crds.GatewayAPIVersion ||
		hr.Annotations["gateway.networking.k8s.io/channel"] != "standard" {
		t.Errorf("HTTPRoute annotations = %v, want bundle %s, standard channel", hr.Annotations, crds.GatewayAPIVersion)
	}
}

const misspeltVS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      wieght: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
`

// TestVirtualServiceSchema is the API server's view of a misspelt VirtualService: the schema is closed at
// spec (no x-kubernetes-preserve-unknown-fields), so pruning finds the misspelt field, which
// fieldValidation=Strict (kubectl's default) rejects; the OpenAPI and CEL checks accept the rest.
func TestVirtualServiceSchema(t *testing.T) {
	vs := crds.Find(crds.NetworkingGroup, "VirtualService")
	for _, v := range vs.Spec.Versions {
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		if spec.XPreserveUnknownFields != nil && *spec.XPreserveUnknownFields {
			t.Errorf("%s: spec preserves unknown fields", v.Name)
		}
		if len(spec.Properties["http"].Items.Schema.Properties["route"].Items.Schema.Properties) == 0 {
			t.Errorf("%s: no schema for spec.http[].route[]", v.Name)
		}
	}
	s, err := crds.SchemaFor(crds.NetworkingGroup, "VirtualService", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Structural().Properties["spec"].XPreserveUnknownFields {
		t.Error("structural schema of spec preserves unknown fields")
	}
	obj := decode(t, misspeltVS)
	errs := s.Check(context.Background(), obj)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `unknown field "spec.http[0].route[0].wieght"`) {
		t.Errorf("Check() = %v, want only the unknown field spec.http[0].route[0].wieght", errs)
	}
	// Check does not prune its argument.
	route := obj["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)["route"].([]any)[0].(map[string]any)
	if _, ok := route["wieght"]; !ok {
		t.Error("Check() modified the object")
	}
	if errs := s.Check(context.Background(), decode(t, strings.Replace(misspeltVS, "wieght", "weight", 1))); len(errs) != 0 {
		t.Errorf("the corrected VirtualService: %v", errs)
	}
}

// TestSchemaRules runs upstream's OpenAPI and CEL rules through the API server's validators.
func TestSchemaRules(t *testing.T) {
	for _, tc := range []struct {
		name, group, kind, version, doc, want string
	}{
		{"HTTPRoute negative weight (OpenAPI minimum)", crds.GatewayGroup, "HTTPRoute", "v1", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: reviews, port: 9080, weight: -1}]
`, "spec.rules[0].backendRefs[0].weight"},
		{"HTTPRoute path must start with / (CEL)", crds.GatewayGroup, "HTTPRoute", "v1", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: "no-slash"}}]
    backendRefs: [{name: reviews, port: 9080}]
`, "spec.rules[0].matches[0].path"},
		{"AuthorizationPolicy unknown action (enum)", crds.SecurityGroup, "AuthorizationPolicy", "v1", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: default}
spec:
  action: DENYY
`, "spec.action"},
		{"DestinationRule simple and consistentHash (CEL oneof)", crds.NetworkingGroup, "DestinationRule", "v1", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      consistentHash: {httpHeaderName: x-user}
`, "spec.trafficPolicy.loadBalancer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := crds.SchemaFor(tc.group, tc.kind, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			errs := s.Check(context.Background(), decode(t, tc.doc))
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Errorf("Check() = %v, want an error at %s", errs, tc.want)
			}
		})
	}
	if _, err := crds.SchemaFor(crds.NetworkingGroup, "Sidecar", "v1"); err == nil {
		t.Error("SchemaFor(Sidecar) = nil error; meshlab does not install it")
	}
	if _, err := crds.SchemaFor(crds.NetworkingGroup, "VirtualService", "v2"); err == nil {
		t.Error("SchemaFor(VirtualService v2) = nil error")
	}
}

func decode(t *testing.T, doc string) map[string]any {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}
