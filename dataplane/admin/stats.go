package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Stat is one counter or gauge under its Envoy name, e.g. cluster.outbound|9080||b.shop.svc.cluster.local.upstream_rq_200.
type Stat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// scopes maps the label that names an Envoy stats scope to the scope's prefix. Istio's Prometheus names
// are Envoy's stat names with the scope name pulled out into that label (its stats tags); this puts it back.
var scopes = map[string]string{
	"envoy_cluster_name":             "cluster",
	"envoy_http_conn_manager_prefix": "http",
	"envoy_listener_address":         "listener",
}

// suffixLabels are tags Envoy extracts from the end of a stat name (upstream_rq_200, downstream_rq_2xx).
var suffixLabels = []string{"envoy_response_code", "envoy_response_code_class"}

// renamed are stats whose Envoy name has a dot where the Prometheus name has an underscore.
var renamed = map[string]string{
	"rbac_denied":           "rbac.denied",
	"fault_aborts_injected": "fault.aborts_injected",
	"fault_delays_injected": "fault.delays_injected",
}

// clusterCounters are the per-cluster counters meshlab's engine keeps; every cluster shows them, zero
// until used, as Envoy lists every cluster's stats.
var clusterCounters = []string{"upstream_cx_connect_fail", "upstream_cx_total", "upstream_rq_completed", "upstream_rq_retry"}

// EnvoyStats turns the envoy_* metrics of g back into Envoy's stat names, sorted by name, adding the
// per-cluster totals Envoy keeps beside per-code counters (upstream_rq_2xx, upstream_rq_completed) and a
// zero for each counter of a cluster that has not been used.
func EnvoyStats(g prometheus.Gatherer, clusters []string) ([]Stat, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering stats: %w", err)
	}
	vals := map[string]uint64{}
	for _, c := range clusters {
		for _, s := range clusterCounters {
			vals["cluster."+c+"."+s] += 0
		}
	}
	for _, mf := range mfs {
		rest, ok := strings.CutPrefix(mf.GetName(), "envoy_")
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := metricValue(mf.GetType(), m)
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			name := rest
			for label, scope := range scopes {
				if sv, ok := labels[label]; ok {
					stat, _ := strings.CutPrefix(rest, scope+"_")
					if r, ok := renamed[stat]; ok {
						stat = r
					}
					name = scope + "." + sv + "." + stat
				}
			}
			for _, l := range suffixLabels {
				if sv, ok := labels[l]; ok {
					name += "_" + sv
				}
			}
			vals[name] += v
			// Envoy's totals beside per-code counters.
			if c, ok := labels["envoy_cluster_name"]; ok && rest == "cluster_upstream_rq" {
				if code := labels["envoy_response_code"]; len(code) == 3 {
					vals["cluster."+c+".upstream_rq_"+code[:1]+"xx"] += v
				}
				vals["cluster."+c+".upstream_rq_completed"] += v
			}
		}
	}
	out := make([]Stat, 0, len(vals))
	for n, v := range vals {
		out = append(out, Stat{n, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func metricValue(t dto.MetricType, m *dto.Metric) uint64 {
	var f float64
	switch t {
	case dto.MetricType_COUNTER:
		f = m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		f = m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		f = m.GetUntyped().GetValue()
	default:
		return 0
	}
	if f < 0 {
		return 0
	}
	return uint64(f)
}

func filterStats(stats []Stat, expr string) ([]Stat, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("Invalid re2 regex: %v", err)
	}
	var out []Stat
	for _, s := range stats {
		if re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

func writeStatsText(w io.Writer, stats []Stat) {
	var b strings.Builder
	for _, s := range stats {
		fmt.Fprintf(&b, "%s: %d\n", s.Name, s.Value)
	}
	io.WriteString(w, b.String())
}

func writeStatsJSON(w http.ResponseWriter, stats []Stat) {
	if stats == nil {
		stats = []Stat{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Stats []Stat `json:"stats"`
	}{stats})
}
