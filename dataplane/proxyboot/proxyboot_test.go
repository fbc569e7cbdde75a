package proxyboot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/identity/ca"
)

func TestCertificatesFromCertDir(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := authority.WorkloadID("default", "reviews")
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{CertChainFile: chain, KeyFile: key, RootCertFile: authority.RootPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf := func(string, ...any) {}

	c := &CertSource{CertDir: dir}
	src, roots, release, err := c.Certificates(context.Background(), "sidecar", "default", "reviews", logf)
	if err != nil {
		t.Fatalf("Certificates() = %v", err)
	}
	defer release()
	got, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id {
		t.Errorf("SVID id = %s, want %s", got.ID, id)
	}
	if len(roots) != 1 || !roots[0].Equal(authority.Root()) {
		t.Errorf("roots = %d certificates, want the authority's root", len(roots))
	}

	// A missing key names the proxy and the directory.
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.Certificates(context.Background(), "waypoint", "default", "reviews", logf)
	if err == nil || !strings.Contains(err.Error(), "loading the waypoint certificate from "+dir) {
		t.Errorf("Certificates() without %s = %v, want an error naming the waypoint and %s", KeyFile, err, dir)
	}
}
