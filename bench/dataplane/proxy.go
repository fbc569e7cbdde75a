package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/waypoint"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/internal/procstat"
)

// ProxySpec is what one proxy process runs: written as JSON by the benchmark, read by RunProxy in the
// child process (`meshlab bench proxy --spec FILE`, or the test binary re-executed).
type ProxySpec struct {
	// Role is "ztunnel", "waypoint" or "forwarder" (the floor: see runForwarder).
	Role string `json:"role"`
	// Name names the proxy in results, e.g. ztunnel-node0.
	Name string `json:"name"`
	// CADir holds root-cert.pem and root-key.pem: every proxy loads the same CA and signs its own SVIDs.
	CADir string `json:"ca_dir"`
	Node  string `json:"node"`
	// Ztunnel is the mesh configuration a ztunnel receives.
	Ztunnel ztunnel.Config `json:"ztunnel"`
	// Pods are the pods a ztunnel (or forwarder) enrols: workload UID and network namespace path.
	Pods []PodRef `json:"pods"`
	// Waypoint: the Gateway it runs for, its pod IP, and its ADS server (reachable from its namespace).
	Namespace  string `json:"namespace,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
	IP         string `json:"ip,omitempty"`
	XDSAddress string `json:"xds_address,omitempty"`
}

// PodRef names an enrolled pod.
type PodRef struct {
	UID   string `json:"uid"`
	Netns string `json:"netns"`
}

// ReadySignal is the line a proxy process prints on stdout once it serves traffic.
const ReadySignal = "ready"

// ReadSpec reads a ProxySpec from a JSON file.
func ReadSpec(path string) (ProxySpec, error) {
	var spec ProxySpec
	b, err := os.ReadFile(path)
	if err != nil {
		return spec, fmt.Errorf("reading proxy spec: %w", err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("decoding proxy spec %s: %w", path, err)
	}
	return spec, nil
}

// RunProxy runs the proxy spec describes until ctx ends, printing ReadySignal on ready once it serves.
func RunProxy(ctx context.Context, spec ProxySpec, ready io.Writer, logf func(string, ...any)) error {
	root, err := ca.LoadOrCreate(spec.CADir, ca.WithTTL(time.Hour))
	if err != nil {
		return fmt.Errorf("loading the benchmark CA: %w", err)
	}
	switch spec.Role {
	case "ztunnel":
		return runZtunnel(ctx, root, spec, ready, logf)
	case "waypoint":
		return runWaypoint(ctx, root, spec, ready, logf)
	case "forwarder":
		return runForwarder(ctx, spec, ready, logf)
	}
	return fmt.Errorf("proxy %s: unknown role %q", spec.Name, spec.Role)
}

func runZtunnel(ctx context.Context, root *ca.CA, spec ProxySpec, ready io.Writer, logf func(string, ...any)) error {
	certs := ztunnel.NewCerts(root)
	defer certs.Close()
	z, err := ztunnel.New(ztunnel.Options{Node: spec.Node, Certs: certs, Bundle: root.Bundle(), Logf: logf})
	if err != nil {
		return err
	}
	defer z.Close()
	if err := z.SetConfig(spec.Ztunnel); err != nil {
		return fmt.Errorf("configuring %s: %w", spec.Name, err)
	}
	for _, p := range spec.Pods {
		h, err := netns.GetFromPath(p.Netns)
		if err != nil {
			return fmt.Errorf("opening the namespace of %s: %w", p.UID, err)
		}
		err = z.AddPod(ctx, p.UID, h)
		h.Close()
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(ready, ReadySignal)
	<-ctx.Done()
	return nil
}

// runWaypoint runs the waypoint in the process's own network namespace (the waypoint pod's), with an SVID
// for service account "waypoint" and its config from the benchmark's ADS server.
func runWaypoint(ctx context.Context, root *ca.CA, spec ProxySpec, ready io.Writer, logf func(string, ...any)) error {
	id, err := root.WorkloadID(spec.Namespace, spec.Gateway)
	if err != nil {
		return err
	}
	svid, err := root.Issue(id, time.Hour)
	if err != nil {
		return fmt.Errorf("issuing the waypoint's SVID: %w", err)
	}
	w, err := waypoint.New(waypoint.Options{RouterOptions: l7xds.RouterOptions{
		XDSAddress: spec.XDSAddress, Namespace: spec.Namespace, Name: spec.Gateway, IPs: []string{spec.IP},
		SVID: svid, Bundle: root.Bundle(), AdminAddress: "off", HealthAddress: "off", Logf: logf,
	}})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer w.Close()
	for !w.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waypoint %s got no config", spec.Name)
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintln(ready, ReadySignal)
	<-ctx.Done()
	return nil
}

// procStats are the CPU and peak memory of one process, read from /proc.
type procStats struct {
	cpu    time.Duration // utime + stime
	hwmKB  int64         // VmHWM
	anonKB int64         // RssAnon
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux architecture
// Go runs on.
const clockTick = 10 * time.Millisecond

func readProcStats(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, fmt.Errorf("reading process stats: %w", err)
	}
	// The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return st, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return st, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	st.cpu = time.Duration(utime+stime) * clockTick
	if st.hwmKB, err = procstat.StatusKB(strconv.Itoa(pid), "VmHWM"); err != nil {
		return st, err
	}
	st.anonKB, err = procstat.StatusKB(strconv.Itoa(pid), "RssAnon")
	return st, err
}

// resetPeak resets the process's VmHWM to its current RSS (Linux 4.0+), so that the next read is the peak
// of one run only.
func resetPeak(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0o200)
}
