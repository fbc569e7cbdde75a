package scenarios

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestFailedTrafficExpectationIsExplained: a failed traffic expectation carries the lab's explanation of
// the request it sent (and says so when explaining failed); a config expectation, and a traffic one that
// passes, carry none.
func TestFailedTrafficExpectationIsExplained(t *testing.T) {
	var asked []Request
	env := &Env{Namespace: "default", Explain: func(_ context.Context, req Request) (string, error) {
		asked = append(asked, req)
		if req.URL == "http://broken/" {
			return "", errors.New("no pod default/nowhere")
		}
		return "GET " + req.URL + " from " + req.Namespace + "/" + req.Pod + "\nresult  forwarded", nil
	}}
	tt := &T{Env: env, name: "s", ctx: context.Background()}

	tt.noteSent(Request{Namespace: "default", Pod: "sleep-1", URL: "http://reviews:9080/"})
	tt.ExpectSplit("90/10", Counts{"v1": 100}, map[string]float64{"v1": 90, "v2": 10})
	tt.Expect(false, "route weights", "90/10", "100/0")                                               // a config check: no request to explain
	tt.ExpectSplit("90/10 again", Counts{"v1": 90, "v2": 10}, map[string]float64{"v1": 90, "v2": 10}) // passes: nothing to explain
	tt.noteSent(Request{Namespace: "default", Pod: "nowhere", URL: "http://broken/"})
	tt.ExpectCounts("aborts", Counts{"HTTP 200": 10}, map[string]Range{"HTTP 503": {min: 5, max: 10}})

	fs := tt.failures
	if len(fs) != 3 || len(asked) != 2 {
		t.Fatalf("failures %+v, explain asked %d times; want 3 failures and 2 explanations", fs, len(asked))
	}
	if want := "GET http://reviews:9080/ from default/sleep-1\nresult  forwarded"; fs[0].Explain != want {
		t.Errorf("split failure explain %q, want %q", fs[0].Explain, want)
	}
	if !strings.Contains(fs[0].String(), "\n    explain:\n      GET http://reviews:9080/ from default/sleep-1\n      result  forwarded") {
		t.Errorf("failure text does not show the explanation indented:\n%s", fs[0])
	}
	if fs[1].Explain != "" {
		t.Errorf("config failure explained: %q", fs[1].Explain)
	}
	if fs[2].Explain != "explain: no pod default/nowhere" {
		t.Errorf("failed explanation %q, want the error said", fs[2].Explain)
	}
}
