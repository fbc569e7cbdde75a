package app

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/internal/kvfields"
)

// metrics counts TCP connections and bytes in Istio's names (istio_tcp_connections_opened_total and so
// on), labelled by reporter and source/destination identity. ztunnel has no metrics hook of its own, so
// finished connections are counted from its access log (this writer sits in front of stdout) and open
// ones from its connection table at scrape time: opened = closed + open, bytes = closed + open so far.
type metrics struct {
	out   io.Writer
	conns func() []ztunnel.Connection

	mu      sync.Mutex
	partial []byte
	closed  map[labelSet]*totals
}

type labelSet struct{ reporter, src, dst, service string }

type totals struct{ conns, sent, recv float64 }

var (
	labelNames = []string{"reporter", "source_principal", "destination_principal", "destination_service"}
	descOpened = prometheus.NewDesc("istio_tcp_connections_opened_total", "TCP connections opened.", labelNames, nil)
	descClosed = prometheus.NewDesc("istio_tcp_connections_closed_total", "TCP connections closed.", labelNames, nil)
	descSent   = prometheus.NewDesc("istio_tcp_sent_bytes_total", "Bytes sent from source to destination.", labelNames, nil)
	descRecv   = prometheus.NewDesc("istio_tcp_received_bytes_total", "Bytes sent from destination to source.", labelNames, nil)
)

func newMetrics(out io.Writer, conns func() []ztunnel.Connection) *metrics {
	if out == nil {
		out = io.Discard
	}
	return &metrics{out: out, conns: conns, closed: map[labelSet]*totals{}}
}

func reporter(direction string) string {
	if direction == ztunnel.Inbound {
		return "destination"
	}
	return "source"
}

// Write passes access-log lines through and counts each finished connection.
func (m *metrics) Write(p []byte) (int, error) {
	m.mu.Lock()
	m.partial = append(m.partial, p...)
	for {
		i := bytes.IndexByte(m.partial, '\n')
		if i < 0 {
			break
		}
		m.count(string(m.partial[:i]))
		m.partial = m.partial[i+1:]
	}
	m.mu.Unlock()
	return m.out.Write(p)
}

func (m *metrics) count(line string) {
	kv := parseAccessLog(line)
	if kv == nil {
		return
	}
	l := labelSet{reporter(kv["direction"]), kv["src.identity"], kv["dst.identity"], kv["dst.service"]}
	t := m.closed[l]
	if t == nil {
		t = &totals{}
		m.closed[l] = t
	}
	sent, _ := strconv.ParseFloat(kv["bytes_sent"], 64)
	recv, _ := strconv.ParseFloat(kv["bytes_recv"], 64)
	t.conns++
	t.sent += sent
	t.recv += recv
}

// parseAccessLog reads the key=value fields after "connection complete"; values are bare or Go-quoted.
func parseAccessLog(line string) map[string]string {
	_, rest, ok := strings.Cut(line, "connection complete")
	if !ok {
		return nil
	}
	return kvfields.Parse(rest)
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpened, descClosed, descSent, descRecv} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	open := map[labelSet]*totals{}
	for _, c := range m.conns() {
		l := labelSet{reporter(c.Direction), c.SrcIdentity, c.DstIdentity, c.DstService}
		t := open[l]
		if t == nil {
			t = &totals{}
			open[l] = t
		}
		t.conns++
		t.sent += float64(c.BytesSent)
		t.recv += float64(c.BytesRecv)
	}
	m.mu.Lock()
	all := map[labelSet]totals{}
	for l, t := range m.closed {
		all[l] = *t
	}
	m.mu.Unlock()
	for l := range open {
		if _, ok := all[l]; !ok {
			all[l] = totals{}
		}
	}
	for l, closed := range all {
		o := open[l]
		if o == nil {
			o = &totals{}
		}
		values := []string{l.reporter, l.src, l.dst, l.service}
		ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, closed.conns+o.conns, values...)
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, closed.conns, values...)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, closed.sent+o.sent, values...)
		ch <- prometheus.MustNewConstMetric(descRecv, prometheus.CounterValue, closed.recv+o.recv, values...)
	}
}
