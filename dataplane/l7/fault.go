package l7

import (
	"fmt"
	"time"

	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Fault is a compiled HTTP fault filter config: a fixed delay and an abort, each applied to a fraction of
// requests (in parts per million).
type Fault struct {
	Delay       time.Duration
	DelayPPM    uint64
	AbortStatus int
	AbortPPM    uint64
}

func compileFault(f *httpfaultv3.HTTPFault) (*Fault, error) {
	if err := checkFields(f, "delay", "abort"); err != nil {
		return nil, err
	}
	out := &Fault{}
	if d := f.GetDelay(); d != nil {
		if err := checkFields(d, "fixed_delay", "percentage"); err != nil {
			return nil, fmt.Errorf("delay: %w", err)
		}
		out.Delay = d.GetFixedDelay().AsDuration()
		ppm, err := perMillion(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		out.DelayPPM = ppm
	}
	if a := f.GetAbort(); a != nil {
		if err := checkFields(a, "http_status", "percentage"); err != nil {
			return nil, fmt.Errorf("abort: %w", err)
		}
		out.AbortStatus = int(a.GetHttpStatus())
		if out.AbortStatus < 200 || out.AbortStatus > 599 {
			return nil, fmt.Errorf("abort.http_status: %d out of range", out.AbortStatus)
		}
		ppm, err := perMillion(a.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		out.AbortPPM = ppm
	}
	return out, nil
}

// perMillion converts a FractionalPercent; an unset percentage means 100% (Envoy's default).
func perMillion(p *typev3.FractionalPercent) (uint64, error) {
	if p == nil {
		return 1_000_000, nil
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	case typev3.FractionalPercent_MILLION:
	default:
		return 0, fmt.Errorf("unknown denominator %v", p.GetDenominator())
	}
	return min(n, 1_000_000), nil
}

// hit decides a fraction with rnd.
func hit(ppm uint64, rnd func() uint64) bool {
	if ppm >= 1_000_000 {
		return true
	}
	return ppm > 0 && rnd()%1_000_000 < ppm
}
