package xds

import (
	"strings"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics, named like istiod's (pilot_*) so dashboards and habits carry
// over. Type labels are short lowercase xDS names (cds, lds, eds, rds, wds, authz).
type metrics struct {
	pushTime     *prometheus.HistogramVec
	convergence  prometheus.Histogram
	configSize   *prometheus.HistogramVec
	connected    prometheus.Gauge
	rejects      *prometheus.CounterVec
	pushes       *prometheus.CounterVec
	genErrors    *prometheus.CounterVec
	triggers     *prometheus.CounterVec
	debounced    prometheus.Counter
	queuePending prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, pending func() float64) *metrics {
	m := &metrics{
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_push_time",
			Help:    "Seconds to generate and send one type to one proxy.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3, 5},
		}, []string{"type"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Seconds from a config change being received to the proxy acknowledging the push that carried it.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .2, .5, 1, 3, 5, 10, 20, 30},
		}),
		configSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_config_size_bytes",
			Help:    "Bytes of resources in one response.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 10),
		}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds",
			Help: "Connected xDS clients.",
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects",
			Help: "Responses a proxy rejected (NACK).",
		}, []string{"type"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes",
			Help: "Responses sent.",
		}, []string{"type"}),
		genErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_generate_errors_total",
			Help: "Generator failures; the proxy keeps its previous config of that type.",
		}, []string{"type"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_push_triggers",
			Help: "Push requests received, by reason.",
		}, []string{"type"}),
		debounced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilot_debounce_flushes_total",
			Help: "Debounced pushes handed to the push queue.",
		}),
		queuePending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pilot_push_queue_pending",
			Help: "Proxies waiting in the push queue.",
		}, pending),
	}
	reg.MustRegister(m.pushTime, m.convergence, m.configSize, m.connected, m.rejects, m.pushes, m.genErrors,
		m.triggers, m.debounced, m.queuePending)
	return m
}

func metricType(typeURL string) string { return strings.ToLower(xdstype.Short(typeURL)) }
