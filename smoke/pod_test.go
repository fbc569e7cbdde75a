package smoke

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshlab/meshlab/api/mesh"
)

// What the kubelet gives every pod and the smoke test gives every container instead.
const (
	// serviceAccountDir is where the kubelet mounts the pod's API token; rest.InClusterConfig reads it.
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// nodeName stands for spec.nodeName.
	nodeName = "meshlab-smoke-node"
	// podIP stands for status.podIP: Docker assigns the address only when the container starts, and the
	// components use it for names and their own inbound identity, which nothing reaches here.
	podIP = "127.0.0.1"
)

// podContainer is one container of a pod as meshlab deploys it.
type podContainer struct {
	namespace string
	pod       corev1.PodSpec
	container corev1.Container
}

// fixtures are the files a pod would get from the cluster, written once per run into a directory Docker
// bind-mounts read-only: the API token and CA (in-cluster config), the mesh root (ConfigMap
// istio-ca-root-cert) and projected tokens. Their contents are only well-formed: nothing answers them.
type fixtures struct {
	dir     string
	rootPEM []byte // a self-signed CA certificate, as ca.crt and as the mesh root
}

// dirWith writes a directory under f.dir holding files (name -> content), readable by any user: the
// containers run as 0, 1000 and 1337.
func (f *fixtures) dirWith(name string, files map[string][]byte) (string, error) {
	dir := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, os.Chmod(dir, 0o755)
}

// user is the uid and gid the container runs as: the container's securityContext, then the pod's, then
// the image's (root: meshlab's image sets no user).
func (p podContainer) user() (uid, gid int64) {
	var runAsUser, runAsGroup *int64
	if s := p.pod.SecurityContext; s != nil {
		runAsUser, runAsGroup = s.RunAsUser, s.RunAsGroup
	}
	if s := p.container.SecurityContext; s != nil {
		if s.RunAsUser != nil {
			runAsUser = s.RunAsUser
		}
		if s.RunAsGroup != nil {
			runAsGroup = s.RunAsGroup
		}
	}
	if runAsUser != nil {
		uid = *runAsUser
	}
	if runAsGroup != nil {
		gid = *runAsGroup
	}
	return uid, gid
}

// request builds the Docker container that runs p as the kubelet would, named name. Whatever the smoke
// test cannot do as Kubernetes does is logged (never dropped silently); whatever it does not know is an
// error.
func (p podContainer) request(t *testing.T, f *fixtures, ref, name string) (testcontainers.ContainerRequest, error) {
	c := p.container
	if len(c.EnvFrom) > 0 {
		return testcontainers.ContainerRequest{}, fmt.Errorf("container %s: envFrom is not supported by the smoke test", c.Name)
	}
	env, err := p.env(name)
	if err != nil {
		return testcontainers.ContainerRequest{}, err
	}
	uid, gid := p.user()
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && uid == 0 {
		return testcontainers.ContainerRequest{}, fmt.Errorf("container %s: runAsNonRoot without a non-root runAsUser: the kubelet would refuse it", c.Name)
	}
	if c.Image != ref {
		return testcontainers.ContainerRequest{}, fmt.Errorf("container %s runs image %q, not meshlab's %q", c.Name, c.Image, ref)
	}

	tmpfs := map[string]string{}
	var binds []string
	if p.pod.AutomountServiceAccountToken == nil || *p.pod.AutomountServiceAccountToken {
		dir, err := f.dirWith("serviceaccount", map[string][]byte{
			"token": []byte("meshlab-smoke-token"), "ca.crt": f.rootPEM, "namespace": []byte(p.namespace),
		})
		if err != nil {
			return testcontainers.ContainerRequest{}, err
		}
		binds = append(binds, dir+":"+serviceAccountDir+":ro")
	}
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(p.pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return testcontainers.ContainerRequest{}, fmt.Errorf("container %s mounts volume %q, which the pod does not have", c.Name, m.Name)
		}
		src, err := f.volume(t, p.pod.Volumes[i])
		if err != nil {
			return testcontainers.ContainerRequest{}, fmt.Errorf("container %s, volume %s: %w", c.Name, m.Name, err)
		}
		if src == "" {
			tmpfs[m.MountPath] = ""
			continue
		}
		bind := src + ":" + m.MountPath
		if m.ReadOnly {
			bind += ":ro"
		}
		binds = append(binds, bind)
	}
	if sc.Privileged != nil && *sc.Privileged {
		// Privileged would hand the container the host's devices, and Docker's --privileged fails where the
		// capability bounding set lacks CAP_SYS_RESOURCE unless dockerd runs meshlab's runc shim (`meshlab
		// host check`); the container's listed capabilities are what its process uses before the cluster.
		t.Logf("%s: privileged in the cluster; here only its capabilities %v", c.Name, capNames(sc))
	}
	if p.pod.HostNetwork {
		t.Logf("%s: host network in the cluster; here a network namespace of its own, so that it cannot touch the host's", c.Name)
	}

	var ports []string
	if pr := c.ReadinessProbe; pr != nil && pr.HTTPGet != nil {
		ports = append(ports, pr.HTTPGet.Port.String()+"/tcp")
	}
	req := testcontainers.ContainerRequest{
		Image:        ref,
		Name:         name,
		Entrypoint:   c.Command, // empty: the image's, as in Kubernetes
		Cmd:          c.Args,
		Env:          env,
		ExposedPorts: ports,
		Tmpfs:        tmpfs,
		Labels:       map[string]string{"meshlab.dev/smoke": "true"},
		ConfigModifier: func(cfg *container.Config) {
			cfg.User = fmt.Sprintf("%d:%d", uid, gid)
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, binds...)
			hc.ReadonlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
			if sc.Capabilities != nil {
				for _, d := range sc.Capabilities.Drop {
					hc.CapDrop = append(hc.CapDrop, string(d))
				}
				for _, a := range sc.Capabilities.Add {
					hc.CapAdd = append(hc.CapAdd, string(a))
				}
			}
			if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
				hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
			}
			if ps := p.pod.SecurityContext; ps != nil && len(ps.Sysctls) > 0 {
				hc.Sysctls = map[string]string{}
				for _, s := range ps.Sysctls {
					hc.Sysctls[s.Name] = s.Value
				}
			}
		},
	}
	return req, nil
}

// env resolves the container's environment as the kubelet would for a pod named name, plus the
// in-cluster API address, which points at a port where nothing listens (the container's own loopback).
func (p podContainer) env(name string) (map[string]string, error) {
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"}
	for _, e := range p.container.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			var v string
			switch path := e.ValueFrom.FieldRef.FieldPath; path {
			case "metadata.name":
				v = name
			case "metadata.namespace":
				v = p.namespace
			case "spec.nodeName":
				v = nodeName
			case "spec.serviceAccountName":
				v = p.pod.ServiceAccountName
			case "status.podIP":
				v = podIP
			default:
				return nil, fmt.Errorf("container %s, env %s: field %q is not known to the smoke test", p.container.Name, e.Name, path)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("container %s, env %s: only values and field references are supported", p.container.Name, e.Name)
		}
	}
	return env, nil
}

// volume returns the host directory to bind for v, or "" for a fresh tmpfs.
func (f *fixtures) volume(t *testing.T, v corev1.Volume) (string, error) {
	switch {
	case v.EmptyDir != nil:
		return "", nil
	case v.HostPath != nil:
		// Never the host's own directory: the smoke test must not change the machine it runs on.
		t.Logf("volume %s: hostPath %s in the cluster; here an empty tmpfs", v.Name, v.HostPath.Path)
		return "", nil
	case v.ConfigMap != nil && v.ConfigMap.Name == mesh.RootConfigMapName:
		return f.dirWith("root-cert", map[string][]byte{mesh.RootConfigMapKey: f.rootPEM})
	case v.Projected != nil:
		files := map[string][]byte{}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken == nil {
				return "", fmt.Errorf("only service-account token projections are supported")
			}
			files[s.ServiceAccountToken.Path] = []byte("meshlab-smoke-token")
		}
		return f.dirWith("projected-"+v.Name, files)
	}
	return "", fmt.Errorf("volume source not supported by the smoke test")
}

func capNames(sc *corev1.SecurityContext) []string {
	var out []string
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			out = append(out, string(c))
		}
	}
	return out
}

// capBits are the capabilities meshlab's containers add, by number (linux/capability.h).
var capBits = map[string]uint{"NET_ADMIN": 12, "NET_RAW": 13, "SYS_ADMIN": 21}

// wantCaps returns the effective capability set the process must have when the container drops ALL
// (exact), or the bits it must at least have otherwise.
func wantCaps(sc *corev1.SecurityContext) (mask uint64, exact bool, err error) {
	if sc == nil || sc.Capabilities == nil {
		return 0, false, nil
	}
	for _, a := range sc.Capabilities.Add {
		bit, ok := capBits[strings.ToUpper(string(a))]
		if !ok {
			return 0, false, fmt.Errorf("capability %s is not known to the smoke test", a)
		}
		mask |= 1 << bit
	}
	return mask, slices.Contains(sc.Capabilities.Drop, "ALL"), nil
}
