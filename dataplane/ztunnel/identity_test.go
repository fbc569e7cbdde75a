package ztunnel_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// TestOutboundVerifiesDestinationIdentity: the workload API says the pod "payments" runs as service account
// payments; the HBONE server on its 15008 holds a valid mesh certificate, but of the intruder. ztunnel must
// not hand it sleep's connection, and says why in its log and access log, as Istio's ztunnel does.
func TestOutboundVerifiesDestinationIdentity(t *testing.T) {
	m := newMesh(t)
	payments := m.node1.AddPod("payments")
	cfg := m.cfg
	cfg.Workloads = append(append([]ztunnel.Workload(nil), cfg.Workloads...), ztunnel.Workload{
		UID: payments.PodName, Name: payments.PodName, Namespace: "default", ServiceAccount: "payments",
		Node: "worker2", IP: payments.IP, Protocol: ztunnel.ProtocolHBONE,
	})
	if err := m.zt0.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}

	// The impostor: a real HBONE server with the intruder's certificate, signed by the mesh CA.
	svid, err := m.ca.Issue(spiffeid.RequireFromString(intruderID), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var streams atomic.Int32
	srv := &hbone.Server{
		TLSConfig: hbone.ServerTLSConfig(svid, m.ca.Bundle(), tlsconfig.AuthorizeAny()),
		Handler:   hbone.HandlerFunc(func(s *hbone.Stream) { streams.Add(1); s.Close() }),
	}
	l, err := payments.Listen("tcp4", ":15008")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	target := payments.Addr(8080)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.sleep.DialContext(ctx, "tcp4", target)
	if err == nil {
		// Capture accepts the connection; ztunnel closes it once the upstream leg fails.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, rerr := c.Read(make([]byte, 1))
		c.Close()
		if rerr == nil || n > 0 {
			t.Fatalf("read %d bytes through the impostor (err %v)", n, rerr)
		}
	}
	want := "identity verification error: peer did not present the expected SAN (spiffe://cluster.local/ns/default/sa/payments), got " + intruderID
	waitFor(t, "the refusal in the access log", func() bool {
		for _, line := range strings.Split(m.log0.String(), "\n") {
			if strings.Contains(line, "\terror\taccess\t") && strings.Contains(line, `dst.hbone_addr="`+target+`"`) &&
				strings.Contains(line, `dst.identity="spiffe://cluster.local/ns/default/sa/payments"`) && strings.Contains(line, want) {
				return true
			}
		}
		return false
	})
	if n := streams.Load(); n != 0 {
		t.Errorf("the impostor received %d streams", n)
	}

	// The right identity still works: httpbin, through the same ztunnel.
	if _, err := get(httpClient(m.sleep), "http://"+m.httpbin.Addr(8080)+"/"); err != nil {
		t.Errorf("sleep -> httpbin after the refusal: %v", err)
	}
}
