package l7

import (
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// outlierDetector is a cluster's outlier detection (outlier_detection), consecutive-error kinds only: a
// host that answers consecutive_5xx 5xx in a row (connection failures and resets count as 503, Envoy's
// non-split mode), or consecutive_gateway_failure 502/503/504 in a row, is ejected for base_ejection_time
// times the number of times it has been ejected (at most max_ejection_time), unless max_ejection_percent of
// the cluster's hosts are ejected already (Envoy still ejects a first host whatever the percentage).
// Each kind ejects only when its enforcing_ percentage is 100 (Istio writes 0 or 100). An ejected host is
// not picked; with the cluster's panic threshold at 0 (Istio's setting) a cluster whose hosts are all
// ejected answers 503 "no healthy upstream". Envoy returns hosts on its interval timer; meshlab returns a
// host as soon as its ejection time is over.
type outlierDetector struct {
	consecutive5xx, consecutiveGateway uint32
	enforce5xx, enforceGateway         bool
	baseEjection, maxEjection          time.Duration
	maxEjectionPercent                 uint32
	now                                func() time.Time

	mu    sync.Mutex
	state map[*Endpoint]*hostOutlier
}

type hostOutlier struct {
	c5xx, cGateway uint32
	ejections      int
	ejectedUntil   time.Time
}

func compileOutlier(od *clusterv3.OutlierDetection) (*outlierDetector, error) {
	if od == nil {
		return nil, nil
	}
	if err := checkFields(od, "consecutive_5xx", "consecutive_gateway_failure", "enforcing_consecutive_5xx",
		"enforcing_consecutive_gateway_failure", "enforcing_success_rate", "interval", "base_ejection_time",
		"max_ejection_time", "max_ejection_percent"); err != nil {
		return nil, err
	}
	if od.EnforcingSuccessRate != nil && od.GetEnforcingSuccessRate().GetValue() != 0 {
		return nil, fmt.Errorf("enforcing_success_rate: success-rate ejection is not supported (set 0)")
	}
	// Envoy's defaults for what is unset.
	o := &outlierDetector{consecutive5xx: 5, consecutiveGateway: 5, enforce5xx: true, baseEjection: 30 * time.Second,
		maxEjection: 300 * time.Second, maxEjectionPercent: 10, now: time.Now, state: map[*Endpoint]*hostOutlier{}}
	if v := od.GetConsecutive_5Xx(); v != nil {
		o.consecutive5xx = v.GetValue()
	}
	if v := od.GetConsecutiveGatewayFailure(); v != nil {
		o.consecutiveGateway = v.GetValue()
	}
	if v := od.GetEnforcingConsecutive_5Xx(); v != nil {
		o.enforce5xx = v.GetValue() >= 100
	}
	if v := od.GetEnforcingConsecutiveGatewayFailure(); v != nil {
		o.enforceGateway = v.GetValue() >= 100
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		o.baseEjection = d.AsDuration()
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		o.maxEjection = d.AsDuration()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		o.maxEjectionPercent = v.GetValue()
	}
	return o, nil
}

// report records the outcome of one attempt on ep: status is the upstream's status, or 503 for a
// connection failure or reset. hosts is the cluster's host count. It reports whether ep was ejected.
func (o *outlierDetector) report(ep *Endpoint, status int, hosts int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.state[ep]
	if s == nil {
		s = &hostOutlier{}
		o.state[ep] = s
	}
	if status < 500 {
		s.c5xx, s.cGateway = 0, 0
		return false
	}
	s.c5xx++
	gateway := status == 502 || status == 503 || status == 504
	if gateway {
		s.cGateway++
	} else {
		s.cGateway = 0
	}
	now := o.now()
	if now.Before(s.ejectedUntil) {
		return false
	}
	switch {
	case o.enforce5xx && o.consecutive5xx > 0 && s.c5xx >= o.consecutive5xx:
	case o.enforceGateway && o.consecutiveGateway > 0 && gateway && s.cGateway >= o.consecutiveGateway:
	default:
		return false
	}
	s.c5xx, s.cGateway = 0, 0
	ejected := 0
	for _, h := range o.state {
		if now.Before(h.ejectedUntil) {
			ejected++
		}
	}
	if ejected > 0 && uint64(ejected)*100 >= uint64(o.maxEjectionPercent)*uint64(hosts) {
		return false
	}
	s.ejections++
	d := o.baseEjection * time.Duration(s.ejections)
	if d > o.maxEjection && o.maxEjection > 0 {
		d = o.maxEjection
	}
	s.ejectedUntil = now.Add(d)
	return true
}

// ejected reports whether ep is ejected now.
func (o *outlierDetector) ejected(ep *Endpoint) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.state[ep]
	return s != nil && o.now().Before(s.ejectedUntil)
}

// anyEjected reports whether some host is ejected now (a cheap check before filtering the hosts).
func (o *outlierDetector) anyEjected() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for _, s := range o.state {
		if now.Before(s.ejectedUntil) {
			return true
		}
	}
	return false
}
