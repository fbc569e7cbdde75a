package scenarios

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank percentile q (0 < q <= 1) of durations: the smallest value with at
// least q of all values at or below it. It is 0 for no durations.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// ValidateBudgets refuses percentiles outside (0, 1] and budgets that are not positive.
func ValidateBudgets(budgets map[float64]time.Duration) error {
	if len(budgets) == 0 {
		return fmt.Errorf("no latency budgets")
	}
	for q, b := range budgets {
		if q <= 0 || q > 1 || math.IsNaN(q) {
			return fmt.Errorf("percentile %v is not within (0, 1] (p50 is 0.5)", q)
		}
		if b <= 0 {
			return fmt.Errorf("budget %s for p%s is not positive", b, percentName(q))
		}
	}
	return nil
}

// CheckLatency compares the percentiles of durations with budgets. failed counts requests that got no
// HTTP answer: they have no latency to count, and any of them fails the check.
func CheckLatency(durations []time.Duration, failed []string, budgets map[float64]time.Duration) (expected, seen string, ok bool) {
	qs := make([]float64, 0, len(budgets))
	for q := range budgets {
		qs = append(qs, q)
	}
	sort.Float64s(qs)
	var exp, got []string
	ok = len(failed) == 0 && len(durations) > 0
	for _, q := range qs {
		p := Percentile(durations, q)
		exp = append(exp, fmt.Sprintf("p%s <= %s", percentName(q), budgets[q]))
		mark := ""
		if p > budgets[q] {
			ok, mark = false, " (over)"
		}
		got = append(got, fmt.Sprintf("p%s %s%s", percentName(q), p.Round(10*time.Microsecond), mark))
	}
	n := len(durations) + len(failed)
	expected = fmt.Sprintf("%s over %d requests (curl's time_total in the pod)", strings.Join(exp, ", "), n)
	seen = strings.Join(got, ", ")
	if len(durations) > 0 {
		seen += fmt.Sprintf(", max %s", Percentile(durations, 1).Round(10*time.Microsecond))
	}
	if len(failed) > 0 {
		c := Counts{}
		for _, f := range failed {
			c[f]++
		}
		seen += fmt.Sprintf("; %d of %d without an HTTP answer: %s", len(failed), n, c)
	}
	return expected, seen, ok
}

// percentName writes 0.5 as "50", 0.999 as "99.9".
func percentName(q float64) string {
	return strconv.FormatFloat(q*100, 'f', -1, 64)
}

// ExpectLatency sends n requests one after another (so that they do not queue behind each other in the
// pod) and records a failure unless every one got an HTTP answer and each percentile of the latency
// curl measured inside the pod (time_total, not the exec round trip) is within its budget, e.g.
// {0.5: 20ms, 0.99: 100ms}.
func (t *T) ExpectLatency(what string, req Request, n int, budgets map[float64]time.Duration) bool {
	if err := ValidateBudgets(budgets); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if n <= 0 {
		t.Fatalf("%s: %d requests is not a sample", what, n)
	}
	var durations []time.Duration
	var failed []string
	for range n {
		if t.Context().Err() != nil {
			t.Fatalf("%s: sent %d of %d requests before the deadline", what, len(durations)+len(failed), n)
		}
		m := t.CurlMeasured(req)
		if m.Status == 0 {
			failed = append(failed, m.Response.String())
			continue
		}
		durations = append(durations, m.Total)
	}
	expected, seen, ok := CheckLatency(durations, failed, budgets)
	t.Logf("%s: %s", what, seen)
	return t.expectTraffic(ok, what, expected, seen)
}
