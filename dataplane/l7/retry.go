package l7

import (
	"fmt"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
)

// RetryPolicy is a compiled route.v3.RetryPolicy.
type RetryPolicy struct {
	On            map[string]bool // retry_on conditions
	NumRetries    int
	PerTryTimeout time.Duration
	StatusCodes   []int
	PreviousHosts bool // the previous_hosts predicate: avoid hosts already tried
	HostSelectMax int  // host_selection_retry_max_attempts
	BaseInterval  time.Duration
	MaxInterval   time.Duration
}

// retryOnSupported lists the retry_on conditions the engine can evaluate.
var retryOnSupported = []string{
	"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
	"retriable-status-codes", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}

func compileRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	if err := checkFields(p, "retry_on", "num_retries", "per_try_timeout", "retry_host_predicate",
		"host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off"); err != nil {
		return nil, err
	}
	rp := &RetryPolicy{On: map[string]bool{}, NumRetries: 1, HostSelectMax: 1, BaseInterval: 25 * time.Millisecond}
	for _, c := range strings.Split(p.GetRetryOn(), ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !slices.Contains(retryOnSupported, c) {
			return nil, fmt.Errorf("retry_on: unsupported condition %q", c)
		}
		rp.On[c] = true
	}
	if n := p.GetNumRetries(); n != nil {
		rp.NumRetries = int(n.GetValue())
	}
	if d := p.GetPerTryTimeout(); d != nil {
		rp.PerTryTimeout = d.AsDuration()
	}
	for _, c := range p.GetRetriableStatusCodes() {
		rp.StatusCodes = append(rp.StatusCodes, int(c))
	}
	for _, hp := range p.GetRetryHostPredicate() {
		msg, err := hp.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("retry_host_predicate %s: %w", hp.GetName(), err)
		}
		if _, ok := msg.(*previoushostsv3.PreviousHostsPredicate); !ok {
			return nil, fmt.Errorf("retry_host_predicate %s: unsupported predicate %s", hp.GetName(), hp.GetTypedConfig().GetTypeUrl())
		}
		rp.PreviousHosts = true
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n > 0 {
		rp.HostSelectMax = int(n)
	}
	if b := p.GetRetryBackOff(); b != nil {
		if err := checkFields(b, "base_interval", "max_interval"); err != nil {
			return nil, fmt.Errorf("retry_back_off: %w", err)
		}
		if d := b.GetBaseInterval(); d != nil {
			rp.BaseInterval = d.AsDuration()
		}
		if d := b.GetMaxInterval(); d != nil {
			rp.MaxInterval = d.AsDuration()
		}
	}
	if rp.MaxInterval == 0 {
		rp.MaxInterval = 10 * rp.BaseInterval
	}
	return rp, nil
}

// attemptFailure describes how an attempt ended, for the retry decision.
type attemptFailure struct {
	connect bool // the upstream connection could not be opened (includes HBONE refusals)
	refused bool // the upstream refused the stream (HTTP/2 REFUSED_STREAM)
	reset   bool // the connection broke after it was opened, before a response
	timeout bool // per-try timeout
	status  int  // response status when there was a response
	grpc    string
}

// shouldRetry reports whether the policy retries an attempt that ended as f.
func (p *RetryPolicy) shouldRetry(f attemptFailure) bool {
	if p == nil {
		return false
	}
	on := p.On
	// An attempt that ended without a response is a reset in Envoy's router, and "reset", "5xx" and
	// "gateway-error" each retry every reset (Envoy's docs: they cover an upstream that "does not respond at
	// all (disconnect/reset/read timeout)"). A per-try timeout is such a reset (Envoy resets the timed-out
	// upstream stream and asks the retry policy as for a local reset), so it is retried on those three and
	// on nothing else: Istio's default retry_on (connect-failure, refused-stream, unavailable, cancelled,
	// retriable-status-codes) does not retry it, and its 504 is not a retriable status code either, since
	// no response came. connect-failure and refused-stream add their own kind of reset.
	if f.connect || f.refused || f.reset || f.timeout {
		switch {
		case on["reset"] || on["5xx"] || on["gateway-error"]:
			return true
		case f.connect:
			return on["connect-failure"]
		case f.refused:
			return on["refused-stream"]
		}
		return false
	}
	s := f.status
	switch {
	case on["5xx"] && s >= 500:
		return true
	case on["gateway-error"] && (s == 502 || s == 503 || s == 504):
		return true
	case on["retriable-4xx"] && s == 409:
		return true
	case on["retriable-status-codes"] && slices.Contains(p.StatusCodes, s):
		return true
	}
	switch f.grpc {
	case "1":
		return on["cancelled"]
	case "4":
		return on["deadline-exceeded"]
	case "8":
		return on["resource-exhausted"]
	case "13":
		return on["internal"]
	case "14":
		return on["unavailable"]
	}
	return false
}

// backoff is Envoy's fully jittered exponential back-off before retry n (1-based).
func (p *RetryPolicy) backoff(n int, rnd func() uint64) time.Duration {
	ceil := p.BaseInterval * time.Duration((uint64(1)<<min(n, 16))-1)
	if ceil > p.MaxInterval || ceil <= 0 {
		ceil = p.MaxInterval
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rnd() % uint64(ceil))
}
