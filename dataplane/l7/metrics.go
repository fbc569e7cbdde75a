package l7

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics, named after the Envoy stats Istio exports
// (envoy_cluster_upstream_rq, envoy_http_rbac_denied, ...), so the familiar queries work.
type Metrics struct {
	upstreamRq    *prometheus.CounterVec
	upstreamRetry *prometheus.CounterVec
	// Circuit breaking and outlier detection.
	upstreamRetryOverflow *prometheus.CounterVec
	upstreamRqOverflow    *prometheus.CounterVec
	outlierEjections      *prometheus.CounterVec
	upstreamCx            *prometheus.CounterVec
	upstreamCxFail        *prometheus.CounterVec
	downstreamRq          *prometheus.CounterVec
	rbacDenied            *prometheus.CounterVec
	jwtDenied             *prometheus.CounterVec
	faultAborts           *prometheus.CounterVec
	faultDelays           *prometheus.CounterVec
	downstreamCx          *prometheus.CounterVec
	downstreamCxAct       *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		upstreamRq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_rq", Help: "Upstream requests completed, by cluster and response code.",
		}, []string{"envoy_cluster_name", "envoy_response_code"}),
		upstreamRetry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_rq_retry", Help: "Upstream requests retried.",
		}, []string{"envoy_cluster_name"}),
		upstreamRetryOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_rq_retry_overflow", Help: "Retries not sent because max_retries were in flight.",
		}, []string{"envoy_cluster_name"}),
		upstreamRqOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_rq_pending_overflow", Help: "Requests refused by the circuit breaker (pending or active requests at their limit).",
		}, []string{"envoy_cluster_name"}),
		outlierEjections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_outlier_detection_ejections_enforced_total", Help: "Hosts ejected by outlier detection.",
		}, []string{"envoy_cluster_name"}),
		upstreamCx: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_cx_total", Help: "Upstream connections opened.",
		}, []string{"envoy_cluster_name"}),
		upstreamCxFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_cluster_upstream_cx_connect_fail", Help: "Upstream connections that failed to open.",
		}, []string{"envoy_cluster_name"}),
		downstreamRq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_http_downstream_rq", Help: "Downstream requests, by connection manager and response code class.",
		}, []string{"envoy_http_conn_manager_prefix", "envoy_response_code_class"}),
		rbacDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_http_rbac_denied", Help: "Requests denied by the RBAC filter.",
		}, []string{"envoy_http_conn_manager_prefix"}),
		jwtDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_http_jwt_authn_denied", Help: "Requests refused by the jwt_authn filter (a token present but invalid, or required and missing).",
		}, []string{"envoy_http_conn_manager_prefix"}),
		faultAborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_http_fault_aborts_injected", Help: "Requests aborted by the fault filter.",
		}, []string{"envoy_http_conn_manager_prefix"}),
		faultDelays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_http_fault_delays_injected", Help: "Requests delayed by the fault filter.",
		}, []string{"envoy_http_conn_manager_prefix"}),
		downstreamCx: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "envoy_listener_downstream_cx_total", Help: "Downstream connections accepted, by listener.",
		}, []string{"envoy_listener_address"}),
		downstreamCxAct: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "envoy_listener_downstream_cx_active", Help: "Downstream connections open, by listener.",
		}, []string{"envoy_listener_address"}),
	}
	if reg != nil {
		reg.MustRegister(m.upstreamRq, m.upstreamRetry, m.upstreamRetryOverflow, m.upstreamRqOverflow, m.outlierEjections, m.upstreamCx, m.upstreamCxFail, m.downstreamRq, m.rbacDenied, m.jwtDenied,
			m.faultAborts, m.faultDelays, m.downstreamCx, m.downstreamCxAct)
	}
	return m
}
