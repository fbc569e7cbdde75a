// Package crds defines the CustomResourceDefinitions meshlab's control plane reads: Gateway API
// (GatewayClass, Gateway, HTTPRoute), Istio networking (VirtualService, DestinationRule) and security
// (AuthorizationPolicy). They are meshlab's own, written in Go: the same groups, kinds and served versions
// as upstream so that users' YAML applies unchanged, but with permissive schemas — spec and status keep
// unknown fields. Validating config is the control plane's job: it reports problems as status conditions
// and events on the objects instead of the API server rejecting them.
package crds

import (
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// API groups.
const (
	GatewayGroup    = "gateway.networking.k8s.io"
	NetworkingGroup = "networking.istio.io"
	SecurityGroup   = "security.istio.io"
)

// LabelManagedBy marks the CRDs as meshlab's, so that `meshlab down` or a reader can tell them apart from
// upstream ones.
const LabelManagedBy = "app.kubernetes.io/managed-by"

// def is one CRD's identity.
type def struct {
	group, kind, plural, singular string
	short                         []string
	categories                    []string
	namespaced                    bool
	versions                      []string // the first is the storage version
	columns                       []apiextensionsv1.CustomResourceColumnDefinition
}

var defs = []def{
	{group: GatewayGroup, kind: "GatewayClass", plural: "gatewayclasses", singular: "gatewayclass", short: []string{"gc"},
		categories: []string{"gateway-api"}, versions: []string{"v1", "v1beta1"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Controller", Type: "string", JSONPath: ".spec.controllerName"},
			{Name: "Accepted", Type: "string", JSONPath: `.status.conditions[?(@.type=="Accepted")].status`},
			age(),
		}},
	{group: GatewayGroup, kind: "Gateway", plural: "gateways", singular: "gateway", short: []string{"gtw"},
		categories: []string{"gateway-api"}, namespaced: true, versions: []string{"v1", "v1beta1"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Class", Type: "string", JSONPath: ".spec.gatewayClassName"},
			{Name: "Address", Type: "string", JSONPath: ".status.addresses[*].value"},
			{Name: "Programmed", Type: "string", JSONPath: `.status.conditions[?(@.type=="Programmed")].status`},
			age(),
		}},
	{group: GatewayGroup, kind: "HTTPRoute", plural: "httproutes", singular: "httproute",
		categories: []string{"gateway-api"}, namespaced: true, versions: []string{"v1", "v1beta1"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Hostnames", Type: "string", JSONPath: ".spec.hostnames"},
			age(),
		}},
	{group: NetworkingGroup, kind: "VirtualService", plural: "virtualservices", singular: "virtualservice", short: []string{"vs"},
		categories: []string{"istio-io", "networking-istio-io"}, namespaced: true, versions: []string{"v1", "v1beta1", "v1alpha3"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Gateways", Type: "string", JSONPath: ".spec.gateways"},
			{Name: "Hosts", Type: "string", JSONPath: ".spec.hosts"},
			age(),
		}},
	{group: NetworkingGroup, kind: "DestinationRule", plural: "destinationrules", singular: "destinationrule", short: []string{"dr"},
		categories: []string{"istio-io", "networking-istio-io"}, namespaced: true, versions: []string{"v1", "v1beta1", "v1alpha3"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Host", Type: "string", JSONPath: ".spec.host"},
			age(),
		}},
	{group: SecurityGroup, kind: "AuthorizationPolicy", plural: "authorizationpolicies", singular: "authorizationpolicy", short: []string{"ap"},
		categories: []string{"istio-io", "security-istio-io"}, namespaced: true, versions: []string{"v1", "v1beta1"},
		columns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Action", Type: "string", JSONPath: ".spec.action"},
			age(),
		}},
}

func age() apiextensionsv1.CustomResourceColumnDefinition {
	return apiextensionsv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}
}

// schema is the permissive structural schema every version shares: an object whose spec and status are
// objects that keep whatever fields they are given.
func schema() *apiextensionsv1.CustomResourceValidation {
	open := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"apiVersion": {Type: "string"},
			"kind":       {Type: "string"},
			"metadata":   {Type: "object"},
			"spec":       open,
			"status":     open,
		},
	}}
}

func (d def) crd() *apiextensionsv1.CustomResourceDefinition {
	scope := apiextensionsv1.ClusterScoped
	if d.namespaced {
		scope = apiextensionsv1.NamespaceScoped
	}
	var annotations map[string]string
	if strings.HasSuffix(d.group, ".k8s.io") {
		// The API server protects *.k8s.io groups: a CRD must say whether its schema was approved
		// upstream. meshlab's permissive schema was not, and says so (the API server then only sets
		// the KubernetesAPIApprovalPolicyConformant condition to False).
		annotations = map[string]string{"api-approved.kubernetes.io": "unapproved, meshlab's own permissive schema for a local sandbox"}
	}
	c := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        d.plural + "." + d.group,
			Labels:      map[string]string{LabelManagedBy: "meshlab"},
			Annotations: annotations,
		},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: d.group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: d.kind, ListKind: d.kind + "List", Plural: d.plural, Singular: d.singular,
				ShortNames: d.short, Categories: d.categories,
			},
			Scope: scope,
		},
	}
	for i, v := range d.versions {
		c.Spec.Versions = append(c.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name:                     v,
			Served:                   true,
			Storage:                  i == 0,
			Schema:                   schema(),
			Subresources:             &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			AdditionalPrinterColumns: d.columns,
		})
	}
	return c
}

// All returns every CRD meshlab installs, Gateway API first. Each call returns new objects.
func All() []*apiextensionsv1.CustomResourceDefinition {
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(defs))
	for _, d := range defs {
		out = append(out, d.crd())
	}
	return out
}

// Names returns the names of the CRDs (plural.group), for waiting until they are established.
func Names() []string {
	out := make([]string, 0, len(defs))
	for _, d := range defs {
		out = append(out, d.plural+"."+d.group)
	}
	return out
}
