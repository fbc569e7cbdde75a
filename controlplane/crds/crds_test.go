package crds_test

import (
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/crds"
)

// TestStructuralSchemas runs the API server's own structural-schema checks (the ones that make it refuse a
// CRD) on every version's schema. The whole API server validation needs k8s.io/apiserver, which is not in
// the module graph; the checks below cover the rest of what it enforces on these simple CRDs.
func TestStructuralSchemas(t *testing.T) {
	for _, crd := range crds.All() {
		for _, v := range crd.Spec.Versions {
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				t.Fatalf("%s %s: converting schema: %v", crd.Name, v.Name, err)
			}
			s, err := schema.NewStructural(&internal)
			if err != nil {
				t.Fatalf("%s %s: NewStructural() = %v", crd.Name, v.Name, err)
			}
			if errs := schema.ValidateStructural(nil, s); len(errs) > 0 {
				t.Errorf("%s %s: not structural: %v", crd.Name, v.Name, errs.ToAggregate())
			}
			for _, f := range []string{"spec", "status"} {
				p, ok := s.Properties[f]
				if !ok || !p.XPreserveUnknownFields || p.Type != "object" {
					t.Errorf("%s %s: %s must be an object preserving unknown fields, got %+v", crd.Name, v.Name, f, p)
				}
			}
		}
	}
}

func TestCRDShape(t *testing.T) {
	want := map[string][]string{
		"gatewayclasses.gateway.networking.k8s.io": {"v1", "v1beta1"},
		"gateways.gateway.networking.k8s.io":       {"v1", "v1beta1"},
		"httproutes.gateway.networking.k8s.io":     {"v1", "v1beta1"},
		"virtualservices.networking.istio.io":      {"v1", "v1beta1", "v1alpha3"},
		"destinationrules.networking.istio.io":     {"v1", "v1beta1", "v1alpha3"},
		"authorizationpolicies.security.istio.io":  {"v1", "v1beta1"},
	}
	all := crds.All()
	if len(all) != len(want) || len(crds.Names()) != len(want) {
		t.Fatalf("All() has %d CRDs, Names() %d; want %d", len(all), len(crds.Names()), len(want))
	}
	for _, crd := range all {
		versions, ok := want[crd.Name]
		if !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
			continue
		}
		if got := crd.Spec.Names.Plural + "." + crd.Spec.Group; got != crd.Name {
			t.Errorf("%s: name must be plural.group, got %s", crd.Name, got)
		}
		for _, n := range []string{crd.Spec.Names.Plural, crd.Spec.Names.Singular, strings.ToLower(crd.Spec.Names.Kind)} {
			if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
				t.Errorf("%s: name %q: %v", crd.Name, n, errs)
			}
		}
		if crd.Spec.Names.ListKind != crd.Spec.Names.Kind+"List" {
			t.Errorf("%s: listKind %q", crd.Name, crd.Spec.Names.ListKind)
		}
		cluster := crd.Spec.Names.Kind == "GatewayClass"
		if cluster != (crd.Spec.Scope == apiextensionsv1.ClusterScoped) {
			t.Errorf("%s: scope %s", crd.Name, crd.Spec.Scope)
		}
		var got []string
		storage := 0
		for _, v := range crd.Spec.Versions {
			got = append(got, v.Name)
			if !v.Served {
				t.Errorf("%s %s: not served", crd.Name, v.Name)
			}
			if v.Storage {
				storage++
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("%s %s: no status subresource", crd.Name, v.Name)
			}
		}
		if storage != 1 || !crd.Spec.Versions[0].Storage {
			t.Errorf("%s: want exactly one storage version, the first; got %d", crd.Name, storage)
		}
		if strings.Join(got, ",") != strings.Join(versions, ",") {
			t.Errorf("%s: versions %v, want %v", crd.Name, got, versions)
		}
		// The object must survive YAML, the form `kubectl apply` and server-side apply send.
		b, err := yaml.Marshal(crd)
		if err != nil {
			t.Fatal(err)
		}
		var back apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &back); err != nil {
			t.Fatalf("%s: YAML round trip: %v", crd.Name, err)
		}
		if back.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].XPreserveUnknownFields == nil {
			t.Errorf("%s: x-kubernetes-preserve-unknown-fields lost in YAML", crd.Name)
		}
	}
}
