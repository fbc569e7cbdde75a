package caserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/identity/ca"
)

// Caller is who a token proved to be. PodName and NodeName are set when the token is bound to a pod (a
// projected token; Kubernetes >= 1.30 also records the pod's node).
type Caller struct {
	Namespace      string
	ServiceAccount string
	PodName        string
	NodeName       string
}

func (c Caller) id(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := ca.WorkloadID(td, c.Namespace, c.ServiceAccount)
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// Authenticator checks a bearer token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Caller, error)
}

// AuthenticatorFunc adapts a function to an Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (Caller, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (Caller, error) {
	return f(ctx, token)
}

// Keys of a TokenReview's extra info for tokens bound to a pod.
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
)

// TokenReviewer authenticates service-account tokens with the Kubernetes TokenReview API, as Istio's CA
// does. The control plane's service account needs `create` on tokenreviews (see RBACRules).
type TokenReviewer struct {
	Client kubernetes.Interface
	// Audiences the token must be minted for (default: istio-ca).
	Audiences []string
}

var _ Authenticator = TokenReviewer{}

// Authenticate creates a TokenReview and reads the caller from its status.
func (r TokenReviewer) Authenticate(ctx context.Context, token string) (Caller, error) {
	aud := r.Audiences
	if len(aud) == 0 {
		aud = []string{mesh.TokenAudience}
	}
	review, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: aud},
	}, metav1.CreateOptions{})
	if err != nil {
		return Caller{}, fmt.Errorf("creating TokenReview: %w", err)
	}
	return CallerFromReview(review.Status, aud)
}

// CallerFromReview reads a Caller out of a TokenReview status: it must be authenticated, for one of the
// audiences, and for a user system:serviceaccount:NAMESPACE:NAME.
func CallerFromReview(st authenticationv1.TokenReviewStatus, audiences []string) (Caller, error) {
	if st.Error != "" {
		return Caller{}, fmt.Errorf("token review: %s", st.Error)
	}
	if !st.Authenticated {
		return Caller{}, errors.New("token review: not authenticated")
	}
	if len(audiences) > 0 && len(st.Audiences) > 0 && !overlap(st.Audiences, audiences) {
		return Caller{}, fmt.Errorf("token review: token is for %v, not %v", st.Audiences, audiences)
	}
	rest, ok := strings.CutPrefix(st.User.Username, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return Caller{}, fmt.Errorf("token review: %q is not a service account", st.User.Username)
	}
	c := Caller{Namespace: ns, ServiceAccount: sa}
	if v := st.User.Extra[ExtraPodName]; len(v) > 0 {
		c.PodName = v[0]
	}
	if v := st.User.Extra[ExtraNodeName]; len(v) > 0 {
		c.NodeName = v[0]
	}
	return c, nil
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// WorkloadLocator says whether a pod running as namespace/serviceAccount is scheduled on node.
type WorkloadLocator interface {
	OnNode(ctx context.Context, namespace, serviceAccount, node string) (bool, error)
}

// PodLocator answers WorkloadLocator from the API server: the pods of the namespace on that node. The
// control plane's service account needs `list` on pods (see RBACRules).
type PodLocator struct {
	Client kubernetes.Interface
}

var _ WorkloadLocator = PodLocator{}

// OnNode lists the namespace's pods on node and looks for one with the service account.
func (l PodLocator) OnNode(ctx context.Context, namespace, serviceAccount, node string) (bool, error) {
	pods, err := l.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return false, fmt.Errorf("listing pods of %s on %s: %w", namespace, node, err)
	}
	for _, p := range pods.Items {
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		// The selector already filters by node; checking again keeps a lister that ignores it honest.
		if p.Spec.NodeName == node && sa == serviceAccount && p.DeletionTimestamp == nil {
			return true, nil
		}
	}
	return false, nil
}
