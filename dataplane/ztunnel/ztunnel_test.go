package ztunnel_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/identity/ca"
)

// syncBuffer is an access-log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mesh is two nodes with a ztunnel each:
// node0: sleep (enrolled), intruder (enrolled), legacy (not enrolled); node1: httpbin (enrolled, :8080).
type mesh struct {
	ca                      *ca.CA
	sleep, intruder, legacy *netnstest.Pod
	httpbin                 *netnstest.Pod
	zt0, zt1                *ztunnel.Ztunnel
	log0, log1              *syncBuffer
	vip                     netip.Addr
	node1                   *netnstest.Node
	cfg                     ztunnel.Config
}

const (
	sleepID    = "spiffe://cluster.local/ns/default/sa/sleep"
	httpbinID  = "spiffe://cluster.local/ns/default/sa/httpbin"
	intruderID = "spiffe://cluster.local/ns/default/sa/intruder"
)

func newMesh(t *testing.T) *mesh {
	network := netnstest.New(t)
	n0, n1 := network.AddNode("worker"), network.AddNode("worker2")
	m := &mesh{
		sleep: n0.AddPod("sleep"), intruder: n0.AddPod("intruder"), legacy: n0.AddPod("legacy"),
		httpbin: n1.AddPod("httpbin"), vip: netip.MustParseAddr("10.96.0.10"),
		log0: &syncBuffer{}, log1: &syncBuffer{}, node1: n1,
	}
	var err error
	if m.ca, err = ca.New(ca.WithTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wl := func(p *netnstest.Pod, sa string, proto ztunnel.Protocol, node string) ztunnel.Workload {
		return ztunnel.Workload{UID: p.PodName, Name: p.PodName, Namespace: "default", ServiceAccount: sa,
			Node: node, IP: p.IP, Protocol: proto}
	}
	cfg := ztunnel.Config{
		Workloads: []ztunnel.Workload{
			wl(m.sleep, "sleep", ztunnel.ProtocolHBONE, "worker"),
			wl(m.intruder, "intruder", ztunnel.ProtocolHBONE, "worker"),
			wl(m.legacy, "legacy", ztunnel.ProtocolNone, "worker"),
			wl(m.httpbin, "httpbin", ztunnel.ProtocolHBONE, "worker2"),
		},
		Services: []ztunnel.Service{{
			Name: "httpbin", Namespace: "default", Hostname: "httpbin.default.svc.cluster.local",
			VIPs: []netip.Addr{m.vip}, Ports: map[uint16]uint16{80: 8080}, Endpoints: []string{"httpbin"},
		}},
		Policies: []ztunnel.Policy{{
			Name: "deny-intruder", Namespace: "default", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionDeny,
			Rules: []ztunnel.Rule{{Principals: []string{"cluster.local/ns/default/sa/intruder"}}},
		}},
	}
	newZ := func(node string, log *syncBuffer) *ztunnel.Ztunnel {
		certs := ztunnel.NewCerts(m.ca)
		t.Cleanup(func() { certs.Close() })
		z, err := ztunnel.New(ztunnel.Options{Node: node, Certs: certs, Bundle: m.ca.Bundle(), AccessLog: log, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		if err := z.SetConfig(cfg); err != nil {
			t.Fatalf("SetConfig() = %v", err)
		}
		t.Cleanup(func() {
			if err := z.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
		})
		return z
	}
	m.cfg = cfg
	m.zt0, m.zt1 = newZ("worker", m.log0), newZ("worker2", m.log1)
	ctx := context.Background()
	for _, e := range []struct {
		z *ztunnel.Ztunnel
		p *netnstest.Pod
	}{{m.zt0, m.sleep}, {m.zt0, m.intruder}, {m.zt1, m.httpbin}} {
		if err := e.z.AddPod(ctx, e.p.PodName, e.p.Handle); err != nil {
			t.Fatalf("AddPod(%s) = %v", e.p.PodName, err)
		}
	}

	// httpbin answers with the client address it sees.
	l, err := m.httpbin.Listen("tcp4", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from httpbin", r.RemoteAddr[:strings.LastIndex(r.RemoteAddr, ":")])
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

// httpClient dials from inside a pod, as the application would (and is captured if the pod is).
func httpClient(p *netnstest.Pod) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: p.DialContext}}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func findConn(conns []ztunnel.Connection, direction, workload string) *ztunnel.Connection {
	for i := range conns {
		if conns[i].Direction == direction && conns[i].Workload == workload {
			return &conns[i]
		}
	}
	return nil
}

func TestZtunnel(t *testing.T) {
	m := newMesh(t)
	httpbinAddr := m.httpbin.Addr(8080)

	t.Run("enrolled to enrolled over HBONE keeps the source IP", func(t *testing.T) {
		client := httpClient(m.sleep)
		defer client.CloseIdleConnections()
		got, err := get(client, "http://"+httpbinAddr+"/")
		if err != nil {
			t.Fatalf("GET = %v", err)
		}
		if want := "hello " + m.sleep.IP.String() + " from httpbin"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		// The keep-alive connection is still open: both ztunnels list it.
		out := findConn(m.zt0.Connections(), ztunnel.Outbound, "default/sleep")
		if out == nil {
			t.Fatalf("no outbound connection for sleep in %+v", m.zt0.Connections())
		}
		wantOut := ztunnel.Connection{Protocol: "HBONE", Remote: m.httpbin.Addr(15008), RemoteTarget: httpbinAddr,
			SrcIdentity: sleepID, DstIdentity: httpbinID, DstWorkload: "default/httpbin", Local: m.sleep.IP.String()}
		if out.Protocol != wantOut.Protocol || out.Remote != wantOut.Remote || out.RemoteTarget != wantOut.RemoteTarget ||
			out.SrcIdentity != wantOut.SrcIdentity || out.DstIdentity != wantOut.DstIdentity ||
			out.DstWorkload != wantOut.DstWorkload || out.Local != wantOut.Local {
			t.Errorf("outbound connection = %+v, want %+v", *out, wantOut)
		}
		in := findConn(m.zt1.Connections(), ztunnel.Inbound, "default/httpbin")
		if in == nil {
			t.Fatalf("no inbound connection for httpbin in %+v", m.zt1.Connections())
		}
		if in.Protocol != "HBONE" || in.SrcIdentity != sleepID || in.Local != m.httpbin.Addr(15008) ||
			in.RemoteTarget != httpbinAddr || !strings.HasPrefix(in.Remote, m.sleep.IP.String()+":") {
			t.Errorf("inbound connection = %+v", *in)
		}
		if in.BytesRecv == 0 || in.BytesSent == 0 {
			t.Errorf("inbound counters sent=%d recv=%d, want both > 0", in.BytesSent, in.BytesRecv)
		}
		client.CloseIdleConnections()
		waitFor(t, "access log lines", func() bool {
			return strings.Contains(m.log0.String(), `direction="outbound"`) && strings.Contains(m.log1.String(), `direction="inbound"`)
		})
		for _, want := range []string{
			`src.identity="` + sleepID + `"`, `dst.identity="` + httpbinID + `"`,
			`dst.addr="` + m.httpbin.Addr(15008) + `"`, `dst.hbone_addr="` + httpbinAddr + `"`, `protocol="HBONE"`,
		} {
			if !strings.Contains(m.log0.String(), want) {
				t.Errorf("source ztunnel access log lacks %s:\n%s", want, m.log0.String())
			}
			if !strings.Contains(m.log1.String(), want) {
				t.Errorf("destination ztunnel access log lacks %s:\n%s", want, m.log1.String())
			}
		}
		waitFor(t, "connection table to empty", func() bool { return len(m.zt0.Connections()) == 0 })
	})

	t.Run("service VIP is resolved by ztunnel", func(t *testing.T) {
		client := httpClient(m.sleep)
		defer client.CloseIdleConnections()
		got, err := get(client, "http://"+m.vip.String()+":80/")
		if err != nil {
			t.Fatalf("GET VIP = %v", err)
		}
		if want := "hello " + m.sleep.IP.String() + " from httpbin"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		out := findConn(m.zt0.Connections(), ztunnel.Outbound, "default/sleep")
		if out == nil || out.DstService != "httpbin.default.svc.cluster.local" || out.RemoteTarget != httpbinAddr ||
			out.DstAddr != m.vip.String()+":80" {
			t.Errorf("outbound connection = %+v, want service httpbin, target %s", out, httpbinAddr)
		}
		// The connection's access-log line must land before the next subtest counts lines.
		client.CloseIdleConnections()
		waitFor(t, "connection table to empty", func() bool { return len(m.zt0.Connections()) == 0 })
	})

	t.Run("un-enrolled pod is not captured", func(t *testing.T) {
		if ok, err := capture.Installed(m.legacy.Handle, capture.DefaultConfig()); err != nil || ok {
			t.Fatalf("legacy pod has capture rules: %v %v", ok, err)
		}
		before := strings.Count(m.log0.String(), "\n")
		client := httpClient(m.legacy)
		defer client.CloseIdleConnections()
		got, err := get(client, "http://"+httpbinAddr+"/")
		if err != nil {
			t.Fatalf("GET = %v", err)
		}
		if want := "hello " + m.legacy.IP.String() + " from httpbin"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		// Nothing on the legacy pod's side; the captured destination takes it in as plaintext on 15006.
		if findConn(m.zt0.Connections(), ztunnel.Outbound, "default/legacy") != nil {
			t.Error("ztunnel carried the un-enrolled pod's outbound traffic")
		}
		in := findConn(m.zt1.Connections(), ztunnel.Inbound, "default/httpbin")
		if in == nil || in.Protocol != "TCP" || in.SrcWorkload != "default/legacy" || in.SrcIdentity != "" {
			t.Errorf("inbound plaintext connection = %+v", in)
		}
		client.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
		if after := strings.Count(m.log0.String(), "\n"); after != before {
			t.Errorf("node0 ztunnel logged %d lines for the un-enrolled pod", after-before)
		}
	})

	t.Run("15008 refuses clients without a valid certificate", func(t *testing.T) {
		foreign, _ := ca.New()
		svid, _ := foreign.Issue(spiffeid.RequireFromString(sleepID), time.Hour)
		for name, cfg := range map[string]*hbonecfg{
			"foreign root": {tls: hbone.ClientTLSConfig(svid, m.ca.Bundle(), tlsconfig.AuthorizeAny())},
			"no cert":      {noCert: true},
		} {
			client := &hbone.Client{DialContext: m.legacy.DialContext}
			tc := cfg.tls
			if cfg.noCert {
				tc = hbone.ClientTLSConfig(nil, m.ca.Bundle(), tlsconfig.AuthorizeAny())
				tc.GetClientCertificate = nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := client.Dial(ctx, m.httpbin.Addr(15008), httpbinAddr, tc)
			cancel()
			if err == nil {
				_, err = io.ReadAll(conn)
				conn.Close()
			}
			client.Close()
			if err == nil {
				t.Errorf("%s: tunnel accepted", name)
			}
		}
	})

	t.Run("L4 deny by principal", func(t *testing.T) {
		_, err := get(httpClient(m.intruder), "http://"+httpbinAddr+"/")
		if err == nil {
			t.Fatal("intruder reached httpbin")
		}
		waitFor(t, "policy rejection in the access log", func() bool {
			return strings.Contains(m.log1.String(), `src.identity="`+intruderID+`"`) &&
				strings.Contains(m.log1.String(), "policy rejection: denied by policy default/deny-intruder")
		})
		// sleep is still allowed.
		if _, err := get(httpClient(m.sleep), "http://"+httpbinAddr+"/"); err != nil {
			t.Errorf("sleep refused after intruder: %v", err)
		}
	})

	t.Run("un-enrolment removes capture", func(t *testing.T) {
		if err := m.zt0.RemovePod("sleep"); err != nil {
			t.Fatalf("RemovePod() = %v", err)
		}
		if ok, _ := capture.Installed(m.sleep.Handle, capture.DefaultConfig()); ok {
			t.Error("capture rules remain after RemovePod")
		}
		// Now plaintext into httpbin's 15006: it arrives without identity.
		client := httpClient(m.sleep)
		if _, err := get(client, "http://"+httpbinAddr+"/"); err != nil {
			t.Fatalf("GET after un-enrolment = %v", err)
		}
		client.CloseIdleConnections()
		waitFor(t, "plaintext inbound log line from sleep", func() bool {
			for _, line := range strings.Split(m.log1.String(), "\n") {
				if strings.Contains(line, `src.workload="default/sleep"`) && strings.Contains(line, `protocol="TCP"`) &&
					!strings.Contains(line, "src.identity") {
					return true
				}
			}
			return false
		})
	})
}

type hbonecfg struct {
	tls    *tls.Config
	noCert bool
}
