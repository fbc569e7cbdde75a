package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Proxy is what the agent drives: *ztunnel.Ztunnel.
type Proxy interface {
	AddPod(ctx context.Context, uid string, ns netns.NsHandle) error
	RemovePod(uid string) error
}

// Options configure an Agent.
type Options struct {
	// Client reads Pods and Namespaces and patches the redirection annotation. Required.
	Client kubernetes.Interface
	// Node is the node whose pods are enrolled (NODE_NAME). Required.
	Node string
	// Proxy receives AddPod and RemovePod. Required.
	Proxy Proxy
	// Netns finds pod network namespaces (default: /var/run/netns/cni-*).
	Netns *NetnsFinder
	// WorkloadUID names a pod as the workload API does (default WorkloadUID).
	WorkloadUID func(*corev1.Pod) string
	// Ready reports whether ztunnel's config already knows the workload at that IP. Until it does the pod
	// waits; call Resync when the config changes. nil: enrol at once.
	Ready func(uid string, ip netip.Addr) bool
	// RemoveRules removes capture an earlier ztunnel left in a pod that is annotated as captured but is no
	// longer enrolled (the label went away while ztunnel was down). nil: such pods are only un-annotated.
	RemoveRules func(ns netns.NsHandle) error
	// Logf reports enrolments and errors; nil discards.
	Logf func(format string, args ...any)
}

// WorkloadUID is the workload API's uid of a pod: Kubernetes//Pod/NAMESPACE/NAME.
func WorkloadUID(pod *corev1.Pod) string {
	return "Kubernetes//Pod/" + pod.Namespace + "/" + pod.Name
}

// Enrolment is one captured pod, for the admin dump.
type Enrolment struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	WorkloadUID string    `json:"workloadUid"`
	PodUID      string    `json:"podUid"` // the pod's metadata.uid: ztunnel keys its workloadState by it
	IP          string    `json:"ip"`
	Netns       string    `json:"netns"`
	Reason      string    `json:"reason"`
	Since       time.Time `json:"since"`
}

type enrolment struct {
	Enrolment
	podUID types.UID
	ip     netip.Addr
}

// Agent enrols the pods of one node into ztunnel.
type Agent struct {
	opts  Options
	queue workqueue.TypedRateLimitingInterface[string]
	pods  corelisters.PodLister
	nss   corelisters.NamespaceLister

	mu       sync.Mutex
	enrolled map[string]*enrolment // "namespace/name"
	synced   bool
}

// errWaiting marks a pod whose workload ztunnel does not know yet: retried quietly.
var errWaiting = errors.New("waiting for the workload in ztunnel's config")

// New checks opts and returns an agent; Run starts it.
func New(opts Options) (*Agent, error) {
	if opts.Client == nil || opts.Node == "" || opts.Proxy == nil {
		return nil, errors.New("agent: Client, Node and Proxy are required")
	}
	if opts.Netns == nil {
		opts.Netns = &NetnsFinder{}
	}
	if opts.WorkloadUID == nil {
		opts.WorkloadUID = WorkloadUID
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Agent{
		opts: opts,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ztunnel-agent"}),
		enrolled: map[string]*enrolment{},
	}, nil
}

// Run watches Pods on the node and Namespaces and reconciles until ctx ends. Pods stay enrolled when it
// returns; un-enrol them with the proxy's own Close if the node proxy is going away for good.
func (a *Agent) Run(ctx context.Context) error {
	defer a.queue.ShutDown()
	podFactory := informers.NewSharedInformerFactoryWithOptions(a.opts.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.opts.Node).String()
		}))
	nsFactory := informers.NewSharedInformerFactory(a.opts.Client, 0)
	podInformer := podFactory.Core().V1().Pods()
	nsInformer := nsFactory.Core().V1().Namespaces()
	a.pods, a.nss = podInformer.Lister(), nsInformer.Lister()

	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	nsChanged := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if ns, ok := obj.(*corev1.Namespace); ok {
			a.enqueueNamespace(ns.Name)
		}
	}
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nsChanged, DeleteFunc: nsChanged,
		UpdateFunc: func(old, obj any) {
			if old.(*corev1.Namespace).Labels[DataplaneModeLabel] != obj.(*corev1.Namespace).Labels[DataplaneModeLabel] {
				nsChanged(obj)
			}
		},
	}); err != nil {
		return fmt.Errorf("watching namespaces: %w", err)
	}
	podFactory.Start(ctx.Done())
	nsFactory.Start(ctx.Done())
	defer podFactory.Shutdown()
	defer nsFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced, nsInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	a.mu.Lock()
	a.synced = true
	a.mu.Unlock()
	a.opts.Logf("agent: watching pods on %s", a.opts.Node)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	for a.next(ctx) {
	}
	return ctx.Err()
}

// Synced reports whether the agent has read every pod and namespace once (for readiness).
func (a *Agent) Synced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.synced
}

// Resync reconsiders every pod on the node, e.g. after ztunnel's config changed.
func (a *Agent) Resync() {
	if a.pods == nil {
		return
	}
	pods, _ := a.pods.List(labels.Everything())
	for _, p := range pods {
		a.queue.Add(p.Namespace + "/" + p.Name)
	}
}

func (a *Agent) enqueueNamespace(ns string) {
	pods, _ := a.pods.Pods(ns).List(labels.Everything())
	for _, p := range pods {
		a.queue.Add(p.Namespace + "/" + p.Name)
	}
}

// Enrolled lists the captured pods, sorted.
func (a *Agent) Enrolled() []Enrolment {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Enrolment, 0, len(a.enrolled))
	for _, e := range a.enrolled {
		out = append(out, e.Enrolment)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

func (a *Agent) next(ctx context.Context) bool {
	key, shutdown := a.queue.Get()
	if shutdown {
		return false
	}
	defer a.queue.Done(key)
	err := a.reconcile(ctx, key)
	switch {
	case err == nil:
		a.queue.Forget(key)
	case errors.Is(err, errWaiting):
		a.queue.AddAfter(key, 2*time.Second) // Resync brings it back sooner when the config arrives
	default:
		a.opts.Logf("agent: %s: %v (retrying)", key, err)
		a.queue.AddRateLimited(key)
	}
	return true
}

// reconcile brings one pod to what Decide says.
func (a *Agent) reconcile(ctx context.Context, key string) error {
	namespace, name, _ := strings.Cut(key, "/")
	pod, err := a.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		pod, err = nil, nil
	}
	if err != nil {
		return err
	}
	d := Decision{Reason: "deleted"}
	if pod != nil && pod.Spec.NodeName == a.opts.Node {
		ns, _ := a.nss.Get(namespace)
		d = Decide(pod, ns)
	} else if pod != nil {
		d.Reason, pod = "on another node", nil
	}

	a.mu.Lock()
	cur := a.enrolled[key]
	a.mu.Unlock()
	if !d.Enrol {
		if cur != nil {
			if err := a.remove(key, cur, d.Reason); err != nil {
				return err
			}
		} else if pod != nil && pod.Annotations[RedirectionAnnotation] == RedirectionEnabled {
			a.removeStaleRules(pod)
		}
		if pod != nil {
			return a.annotate(ctx, pod, false)
		}
		return nil
	}

	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return fmt.Errorf("pod IP %q: %w", pod.Status.PodIP, err)
	}
	if cur != nil && cur.podUID == pod.UID && cur.ip == ip {
		return a.annotate(ctx, pod, true)
	}
	if cur != nil { // the same name, another pod (recreated) or another IP
		if err := a.remove(key, cur, "replaced"); err != nil {
			return err
		}
	}
	uid := a.opts.WorkloadUID(pod)
	if a.opts.Ready != nil && !a.opts.Ready(uid, ip) {
		return errWaiting
	}
	h, path, err := a.opts.Netns.Find(ip)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := a.opts.Proxy.AddPod(ctx, uid, h); err != nil {
		return err
	}
	a.mu.Lock()
	a.enrolled[key] = &enrolment{
		Enrolment: Enrolment{Namespace: namespace, Name: name, WorkloadUID: uid, PodUID: string(pod.UID), IP: ip.String(), Netns: path, Reason: d.Reason, Since: time.Now()},
		podUID:    pod.UID, ip: ip,
	}
	a.mu.Unlock()
	a.opts.Logf("agent: enrolled %s (%s, %s, netns %s)", key, ip, d.Reason, path)
	return a.annotate(ctx, pod, true)
}

func (a *Agent) remove(key string, cur *enrolment, reason string) error {
	if err := a.opts.Proxy.RemovePod(cur.WorkloadUID); err != nil {
		return fmt.Errorf("removing %s from ztunnel: %w", key, err)
	}
	a.mu.Lock()
	delete(a.enrolled, key)
	a.mu.Unlock()
	a.opts.Netns.Forget(cur.ip)
	a.opts.Logf("agent: un-enrolled %s (%s)", key, reason)
	return nil
}

// removeStaleRules cleans a pod that an earlier ztunnel captured (it carries the annotation) but that is
// no longer enrolled. Best effort: a pod without a namespace any more has no rules either.
func (a *Agent) removeStaleRules(pod *corev1.Pod) {
	if a.opts.RemoveRules == nil || pod.Spec.HostNetwork {
		return
	}
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return
	}
	h, _, err := a.opts.Netns.Find(ip)
	if err != nil {
		return
	}
	defer h.Close()
	if err := a.opts.RemoveRules(h); err != nil {
		a.opts.Logf("agent: removing stale capture of %s/%s: %v", pod.Namespace, pod.Name, err)
		return
	}
	a.opts.Logf("agent: removed stale capture of %s/%s", pod.Namespace, pod.Name)
}

// annotate sets or clears ambient.istio.io/redirection, patching only when it differs.
func (a *Agent) annotate(ctx context.Context, pod *corev1.Pod, enabled bool) error {
	has := pod.Annotations[RedirectionAnnotation] == RedirectionEnabled
	if has == enabled {
		return nil
	}
	value := `null`
	if enabled {
		value = `"` + RedirectionEnabled + `"`
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, RedirectionAnnotation, value)
	_, err := a.opts.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("annotating %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
