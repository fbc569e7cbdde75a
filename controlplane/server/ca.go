package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/identity/ca"
)

// Names of the CA objects, Istio's where Istio has one.
const (
	// CASecret holds the CA root certificate and key in the control plane's namespace.
	CASecret = "meshlab-ca"
	// RootConfigMap publishes the root certificate in every namespace, under RootConfigMapKey.
	RootConfigMap    = "istio-ca-root-cert"
	RootConfigMapKey = "root-cert.pem"
)

// LoadOrCreateCA loads the CA root from Secret meshlab-ca in namespace, or creates a new root and stores it
// there when the Secret does not exist. When two control planes race, the loser loads the winner's root.
func LoadOrCreateCA(ctx context.Context, kube kubernetes.Interface, namespace string, opts ...ca.Option) (*ca.CA, error) {
	secrets := kube.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, CASecret, metav1.GetOptions{})
	if err == nil {
		c, err := ca.Load(s.Data[ca.RootCertFile], s.Data[ca.RootKeyFile], opts...)
		if err != nil {
			return nil, fmt.Errorf("loading the CA from secret %s/%s: %w", namespace, CASecret, err)
		}
		return c, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading secret %s/%s: %w", namespace, CASecret, err)
	}
	// ca.LoadOrCreate writes a new root to a directory; the Secret is its durable home.
	dir, err := os.MkdirTemp("", "meshlab-ca-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	c, err := ca.LoadOrCreate(dir, opts...)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, ca.RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("reading the new root: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, ca.RootKeyFile))
	if err != nil {
		return nil, fmt.Errorf("reading the new root key: %w", err)
	}
	_, err = secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CASecret, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "meshlab"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ca.RootCertFile: certPEM, ca.RootKeyFile: keyPEM},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return LoadOrCreateCA(ctx, kube, namespace, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("creating secret %s/%s: %w", namespace, CASecret, err)
	}
	return c, nil
}

// ServingTLS returns the TLS config of the 15012 listener; it is caserver.ServerTLSConfig (an SVID for id
// issued by c and rotated until ctx ends; client certificates verified against c's root when presented).
func ServingTLS(ctx context.Context, c *ca.CA, id spiffeid.ID) (*tls.Config, error) {
	return caserver.ServerTLSConfig(ctx, c, id)
}

// PublishRoot keeps ConfigMap istio-ca-root-cert (key root-cert.pem) equal to rootPEM in every namespace
// listed by namespaces, creating or fixing it. It runs once; the server calls it on namespace events and
// periodically.
func PublishRoot(ctx context.Context, kube kubernetes.Interface, namespaces []string, rootPEM []byte) error {
	var errs []error
	for _, ns := range namespaces {
		if err := publishRootIn(ctx, kube, ns, rootPEM); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("publishing the CA root: %v", errs)
	}
	return nil
}

func publishRootIn(ctx context.Context, kube kubernetes.Interface, ns string, rootPEM []byte) error {
	cms := kube.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, RootConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootConfigMap, Namespace: ns, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{RootConfigMapKey: string(rootPEM)},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s/%s: %w", ns, RootConfigMap, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading %s/%s: %w", ns, RootConfigMap, err)
	}
	if cm.Data[RootConfigMapKey] == string(rootPEM) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[RootConfigMapKey] = string(rootPEM)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating %s/%s: %w", ns, RootConfigMap, err)
	}
	return nil
}

// retryUntil calls fn until it succeeds or ctx ends, backing off up to a few seconds.
func retryUntil(ctx context.Context, fn func() error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 5 * time.Second},
		func(ctx context.Context) (bool, error) {
			if last = fn(); last != nil {
				return false, nil
			}
			return true, nil
		})
	if err != nil && last != nil {
		return last
	}
	return err
}
