package manifests

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/bookinfo"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Bookinfo's ingress, as Istio's samples/bookinfo/gateway-api/bookinfo-gateway.yaml has it.
const (
	// BookinfoGatewayName is the Gateway; the gateway controller runs it as BookinfoGatewayName-istio.
	BookinfoGatewayName = "bookinfo-gateway"
	// BookinfoRouteName is the HTTPRoute to productpage.
	BookinfoRouteName = "bookinfo"
	// annotationServiceType is Istio's; ClusterIP because kind has no load balancer (Istio's getting
	// started annotates the Gateway so for `kubectl port-forward`).
	annotationServiceType = "networking.istio.io/service-type"
)

// BookinfoGatewayService is the Service in front of bookinfo's gateway pods, what `kubectl port-forward
// svc/bookinfo-gateway-istio 8080:80` reaches.
var BookinfoGatewayService = model.GatewayDeploymentName(BookinfoGatewayName)

// BookinfoGateway returns bookinfo's Gateway (class istio, HTTP on port 80, ClusterIP Service) and the
// HTTPRoute sending /productpage, /static, /login, /logout and /api/v1/products to productpage:9080.
func BookinfoGateway(namespace string) []client.Object {
	same := gwv1.NamespacesFromSame
	path := func(t gwv1.PathMatchType, v string) gwv1.HTTPRouteMatch {
		return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: ptr.To(t), Value: ptr.To(v)}}
	}
	return []client.Object{
		&gwv1.Gateway{
			TypeMeta: metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway"},
			ObjectMeta: metav1.ObjectMeta{Name: BookinfoGatewayName, Namespace: namespace,
				Annotations: map[string]string{annotationServiceType: "ClusterIP"}},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: model.IngressGatewayClass,
				Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
					AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &same}}}},
			},
		},
		&gwv1.HTTPRoute{
			TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
			ObjectMeta: metav1.ObjectMeta{Name: BookinfoRouteName, Namespace: namespace},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: BookinfoGatewayName}}},
				Rules: []gwv1.HTTPRouteRule{{
					Matches: []gwv1.HTTPRouteMatch{
						path(gwv1.PathMatchExact, "/productpage"),
						path(gwv1.PathMatchPathPrefix, "/static"),
						path(gwv1.PathMatchExact, "/login"),
						path(gwv1.PathMatchExact, "/logout"),
						path(gwv1.PathMatchPathPrefix, "/api/v1/products"),
					},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
						Name: gwv1.ObjectName(bookinfo.ProductPage), Port: ptr.To(gwv1.PortNumber(bookinfo.Port)),
					}}}},
				}},
			},
		},
	}
}
