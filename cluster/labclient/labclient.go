// Package labclient reaches into a running meshlab lab through the Kubernetes API server only: it runs commands
// in pods (the remotecommand exec API), forwards a pod port for one HTTP request (the port-forward API),
// and GETs the control plane's debug endpoints through the API server's service proxy. Nothing here needs
// network access to the pods themselves, so it works against kind from the host or from CI.
package labclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meshlab/meshlab/manifests"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
)

// Where the lab's components are (manifests' names) and where the control plane serves its debug
// endpoints (istiod's monitoring port, 15014).
const (
	ControlPlaneNamespace  = manifests.ControlPlaneNamespace
	ControlPlaneService    = manifests.ControlPlaneName
	ControlPlaneDeployment = manifests.ControlPlaneName
	ControlPlaneDebugPort  = "15014"
	ZtunnelDaemonSet       = manifests.ZtunnelName
	// AdminPort is a proxy's admin port (Envoy's 15000), serving /config_dump.
	AdminPort = 15000
)

// ExecResult is what a command run in a pod produced. ExitCode is the command's own exit status; an error
// from Exec means the command could not be run at all (API server, pod or container trouble).
type ExecResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// Exec runs argv in a container of a pod and waits for it, using the WebSocket exec protocol and falling
// back to SPDY on API servers that do not upgrade to WebSockets. container may be empty for a pod with one
// container.
func Exec(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, namespace, pod, container string, argv []string) (ExecResult, error) {
	req := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   argv,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, req.URL().String())
	if err != nil {
		return ExecResult{}, fmt.Errorf("building exec for %s/%s: %w", namespace, pod, err)
	}
	sp, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		return ExecResult{}, fmt.Errorf("building exec for %s/%s: %w", namespace, pod, err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return ExecResult{}, err
	}
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	res := ExecResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitStatus()
		return res, nil
	}
	return res, fmt.Errorf("exec %q in %s/%s: %w", strings.Join(argv, " "), namespace, pod, err)
}

// ServiceGet GETs path (with query params) from a service port through the API server's service proxy.
func ServiceGet(ctx context.Context, kc kubernetes.Interface, namespace, service, port, path string, params map[string]string) ([]byte, error) {
	body, err := kc.CoreV1().Services(namespace).ProxyGet("http", service, port, path, params).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET %s from service %s/%s:%s: %w%s", path, namespace, service, port, err, snippet(body))
	}
	return body, nil
}

// PodGet GETs path from a port of a pod through a port-forward, so it also reaches servers bound to the
// pod's loopback (a proxy's admin port is). The forward lives only for this request.
func PodGet(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, namespace, pod string, port int, path string) ([]byte, error) {
	req := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward")
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward transport: %w", err)
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	if ws, err := portforward.NewSPDYOverWebsocketDialer(req.URL(), cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	var errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, &errOut)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w %s", namespace, pod, port, err, strings.TrimSpace(errOut.String()))
	case <-ctx.Done():
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		return nil, fmt.Errorf("port-forward to %s/%s:%d: no local port: %v", namespace, pod, port, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, localURL(ports[0].Local, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("GET %s from %s/%s:%d: %w %s", path, namespace, pod, port, err, strings.TrimSpace(errOut.String()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s/%s:%d: %w", path, namespace, pod, port, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s from %s/%s:%d: %s%s", path, namespace, pod, port, resp.Status, snippet(body))
	}
	return body, nil
}

// localURL is path (which may carry a query, as /clusters?format=json does) on the forwarded local port.
func localURL(port uint16, path string) string {
	p, q, _ := strings.Cut(path, "?")
	u := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port), Path: p, RawQuery: q}
	return u.String()
}

// snippet is the start of an error body, for messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return ": " + s
}
