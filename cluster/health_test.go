package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// An API server that turns ready after a few failing probes is waited for; one that never does is
// reported with the cluster's name and its last answer, as an environment error.
func TestWaitAPIServerReady(t *testing.T) {
	var probes atomic.Int32
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if probes.Add(1) < 3 {
			http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer starting.Close()
	if err := WaitAPIServerReady(context.Background(), &rest.Config{Host: starting.URL}, "lab", 20*time.Second); err != nil {
		t.Fatalf("a server that becomes ready: %v", err)
	}
	if n := probes.Load(); n != 3 {
		t.Errorf("probed %d times, want 3 (two failures, then ok)", n)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
	}))
	defer broken.Close()
	start := time.Now()
	err := WaitAPIServerReady(context.Background(), &rest.Config{Host: broken.URL}, "lab", 2*time.Second)
	if err == nil {
		t.Fatal("a server that is never ready was accepted")
	}
	if !errors.Is(err, ErrEnvironment) || !strings.Contains(err.Error(), `cluster "lab"`) || !strings.Contains(err.Error(), "etcd failed") {
		t.Errorf("error should be an environment error naming the cluster and the last answer: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %s, want about the 2s timeout", d)
	}
}
