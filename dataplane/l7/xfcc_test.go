package l7

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/identity/ca"
)

// TestXFCC checks each forward_client_cert_details mode on a request that carries a forged header, with and
// without a client certificate, against the header Envoy would hand the app.
func TestXFCC(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	sleep, _ := authority.WorkloadID("default", "sleep")
	svid, err := authority.Issue(sleep, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(svid.Certificates[0].Raw)
	const local = "spiffe://cluster.local/ns/default/sa/echo"
	current := "By=" + local + ";Hash=" + hex.EncodeToString(sum[:]) + `;Subject="";URI=` + sleep.String()
	const forged = "By=spiffe://evil;URI=spiffe://cluster.local/ns/kube-system/sa/admin"

	mtls := &Downstream{PeerCert: svid.Certificates[0], Local: local}
	plain := &Downstream{}
	istioInbound := &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	for _, tt := range []struct {
		mode hcmv3.HttpConnectionManager_ForwardClientCertDetails
		down *Downstream
		want string
	}{
		{hcmv3.HttpConnectionManager_SANITIZE, mtls, ""},
		{hcmv3.HttpConnectionManager_SANITIZE, plain, ""},
		{hcmv3.HttpConnectionManager_FORWARD_ONLY, mtls, forged},
		{hcmv3.HttpConnectionManager_FORWARD_ONLY, plain, ""},
		{hcmv3.HttpConnectionManager_APPEND_FORWARD, mtls, forged + "," + current},
		{hcmv3.HttpConnectionManager_APPEND_FORWARD, plain, ""},
		{hcmv3.HttpConnectionManager_SANITIZE_SET, mtls, current},
		{hcmv3.HttpConnectionManager_SANITIZE_SET, plain, ""},
		{hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY, plain, forged},
	} {
		x, err := compileXFCC(&hcmv3.HttpConnectionManager{ForwardClientCertDetails: tt.mode, SetCurrentClientCertDetails: istioInbound})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := http.NewRequest("GET", "http://echo/", nil)
		r.Header.Set(headerXFCC, forged)
		x.apply(r, tt.down)
		if got := r.Header.Get(headerXFCC); got != tt.want {
			t.Errorf("%v mtls=%v:\n got %q\nwant %q", tt.mode, tt.down.PeerCert != nil, got, tt.want)
		}
	}

	// A field meshlab does not implement is refused, not ignored.
	_, err = compileXFCC(&hcmv3.HttpConnectionManager{SetCurrentClientCertDetails: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true}})
	if err == nil {
		t.Error("set_current_client_cert_details.cert was accepted")
	}
}
