package live

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/meshlab/meshlab/scenarios"
)

func TestExplainRequestFromCurlArgs(t *testing.T) {
	got := explainRequest(scenarios.Request{Namespace: "ns", Pod: "client-1", URL: "http://echo/",
		Args: []string{"-s", "-X", "POST", "-H", "end-user: jason", "--max-time", "3", "--header", "X-Canary:true"}})
	if got.From != "ns/client-1" || got.URL != "http://echo/" || got.Method != "POST" ||
		!reflect.DeepEqual(got.Headers, http.Header{"End-User": {"jason"}, "X-Canary": {"true"}}) {
		t.Errorf("explainRequest = %+v", got)
	}
}
