// Package kube connects the control plane to the Kubernetes API: client-go informers feed the ingest.Store
// (the same store `meshlab render` fills from YAML), and a status writer reports the model's problems back
// on the objects they concern (Gateway API conditions; events and validation status on Istio objects).
package kube

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// Clients are the typed API clients the control plane uses.
type Clients struct {
	Kube    kubernetes.Interface
	Gateway gwclient.Interface
	Istio   istioclient.Interface
}

// NewClients builds the clients from a REST config.
func NewClients(cfg *rest.Config) (*Clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Gateway API client: %w", err)
	}
	is, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Istio client: %w", err)
	}
	return &Clients{Kube: kube, Gateway: gw, Istio: is}, nil
}

// Informers watch every kind the store holds and keep the store equal to the API server's view.
type Informers struct {
	Kube    informers.SharedInformerFactory
	Gateway gwinformers.SharedInformerFactory
	Istio   istioinformers.SharedInformerFactory

	store  *ingest.Store
	logf   func(string, ...any)
	synced []cache.InformerSynced
}

// stripManagedFields drops what the control plane never reads, before objects reach the informer cache:
// managed fields are often the largest part of an object.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// NewInformers creates the informers and routes their events into store. Nothing runs until Start. The
// factories are exported so that other controllers (the waypoint controller) share the same watches.
func NewInformers(c *Clients, store *ingest.Store, logf func(string, ...any)) *Informers {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	i := &Informers{
		Kube:    informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithTransform(stripManagedFields)),
		Gateway: gwinformers.NewSharedInformerFactoryWithOptions(c.Gateway, 0, gwinformers.WithTransform(stripManagedFields)),
		Istio:   istioinformers.NewSharedInformerFactoryWithOptions(c.Istio, 0, istioinformers.WithTransform(stripManagedFields)),
		store:   store,
		logf:    logf,
	}
	for _, inf := range []cache.SharedIndexInformer{
		i.Kube.Core().V1().Namespaces().Informer(),
		i.Kube.Core().V1().Services().Informer(),
		i.Kube.Core().V1().Pods().Informer(),
		i.Kube.Core().V1().ServiceAccounts().Informer(),
		i.Kube.Discovery().V1().EndpointSlices().Informer(),
		i.Gateway.Gateway().V1().GatewayClasses().Informer(),
		i.Gateway.Gateway().V1().Gateways().Informer(),
		i.Gateway.Gateway().V1().HTTPRoutes().Informer(),
		i.Gateway.Gateway().V1().GRPCRoutes().Informer(),
		i.Gateway.Gateway().V1().TCPRoutes().Informer(),
		i.Istio.Networking().V1().VirtualServices().Informer(),
		i.Istio.Networking().V1().DestinationRules().Informer(),
		i.Istio.Security().V1().AuthorizationPolicies().Informer(),
		i.Istio.Security().V1().PeerAuthentications().Informer(),
		i.Istio.Security().V1().RequestAuthentications().Informer(),
	} {
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    i.put,
			UpdateFunc: func(_, n any) { i.put(n) },
			DeleteFunc: i.remove,
		})
		if err != nil {
			// Only a stopped informer refuses handlers; these are new.
			panic(fmt.Sprintf("adding an event handler: %v", err))
		}
		// The registration's HasSynced, not the informer's: it also waits until the listed objects have
		// been delivered to the handler, so a synced store holds them all.
		i.synced = append(i.synced, reg.HasSynced)
	}
	return i
}

func (i *Informers) put(obj any) {
	o, ok := obj.(ingest.Object)
	if !ok {
		i.logf("kube: ignoring %T: not an object", obj)
		return
	}
	if _, err := i.store.Update(o); err != nil {
		i.logf("kube: storing %T %s/%s: %v", obj, o.GetNamespace(), o.GetName(), err)
	}
}

func (i *Informers) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(ingest.Object)
	if !ok {
		i.logf("kube: ignoring deletion of %T", obj)
		return
	}
	key, err := ingest.KeyOf(o)
	if err != nil {
		i.logf("kube: deleting %T: %v", obj, err)
		return
	}
	i.store.Delete(key)
}

// Start runs the informers until ctx ends.
func (i *Informers) Start(ctx context.Context) {
	i.Kube.Start(ctx.Done())
	i.Gateway.Start(ctx.Done())
	i.Istio.Start(ctx.Done())
}

// WaitForSync waits until every informer has listed its kind once (so the first snapshot is complete),
// or fails after timeout.
func (i *Informers) WaitForSync(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), i.synced...) {
		return fmt.Errorf("informers did not sync within %s (are the CRDs installed and the RBAC rules applied?)", timeout)
	}
	return nil
}
