// Package crds holds the CustomResourceDefinitions meshlab installs: upstream's own, with their full
// OpenAPI schemas and CEL rules, so that the API server rejects what it rejects in a real mesh (a misspelt
// field, a negative weight) before the control plane sees it.
//
//   - Gateway API, standard channel, from sigs.k8s.io/gateway-api at go.mod's version (config/crd/standard):
//     GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant, BackendTLSPolicy, ListenerSet, TCPRoute,
//     TLSRoute, UDPRoute — what Istio asks users to install. Since v1.5 TCPRoute and TLSRoute are in the
//     standard channel, so no experimental CRD is needed.
//   - Istio, from istio.io/api at go.mod's version (kubernetes/customresourcedefinitions.gen.yaml):
//     VirtualService, DestinationRule, Gateway, ServiceEntry (networking.istio.io) and AuthorizationPolicy,
//     PeerAuthentication, RequestAuthentication (security.istio.io) — the kinds the control plane reads and
//     the others controlplane/validation has Istio's rules for.
//
// go:embed cannot reach the module cache, so `go generate` (controlplane/crds/gen) copies the documents
// byte for byte into upstream/ and records the module versions in zz_generated.go; a test fails when go.mod
// moves to another version without regenerating. Copying rather than generating Go literals keeps the
// embedded files diffable against upstream and sends the API server exactly what upstream ships.
package crds

//go:generate go run ./gen

import (
	"embed"
	"encoding/json"
	"fmt"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// API groups.
const (
	GatewayGroup    = "gateway.networking.k8s.io"
	NetworkingGroup = "networking.istio.io"
	SecurityGroup   = "security.istio.io"
)

//go:embed upstream
var upstream embed.FS

// decoded holds each CRD as JSON, converted from YAML once: All decodes new objects from it at each call.
var decoded = sync.OnceValues(func() ([][]byte, error) {
	out := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := upstream.ReadFile(f)
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("crds: %s: %w", f, err)
		}
		out = append(out, js)
	}
	return out, nil
})

// All returns every CRD meshlab installs, in apply order: Gateway API, then Istio. Each call returns new
// objects. The embedded files are checked by the package's tests, so a decoding error is a build defect
// and panics.
func All() []*apiextensionsv1.CustomResourceDefinition {
	docs, err := decoded()
	if err != nil {
		panic(err)
	}
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(docs))
	for i, js := range docs {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := json.Unmarshal(js, c); err != nil {
			panic(fmt.Sprintf("crds: %s: %v", files[i], err))
		}
		out = append(out, c)
	}
	return out
}

// Names returns the names of the CRDs (plural.group), for waiting until they are established.
func Names() []string {
	all := All()
	out := make([]string, 0, len(all))
	for _, c := range all {
		out = append(out, c.Name)
	}
	return out
}

// Find returns the CRD of a group and kind, or nil.
func Find(group, kind string) *apiextensionsv1.CustomResourceDefinition {
	for _, c := range All() {
		if c.Spec.Group == group && c.Spec.Names.Kind == kind {
			return c
		}
	}
	return nil
}
