package scenarios

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meshlab/meshlab/internal/stats"
)

// Range is what ExpectCounts accepts for one class of a tally: either a share of all responses, tested
// with an exact two-sided binomial test at SplitAlpha (a fault injected into 50% of requests), or
// bounds on the count itself (retries: no 503 at all).
type Range struct {
	share    float64
	hasShare bool
	min, max int // max < 0: no upper bound
}

// Share accepts counts that fit the fraction p (0..1) of the total at SplitAlpha.
func Share(p float64) Range { return Range{share: p, hasShare: true} }

// Share returns the fraction a Share range wants; ok is false for bounds on the count.
func (r Range) Share() (p float64, ok bool) { return r.share, r.hasShare }

// Between accepts lo <= count <= hi.
func Between(lo, hi int) Range { return Range{min: lo, max: hi} }

// AtLeast accepts count >= lo.
func AtLeast(lo int) Range { return Range{min: lo, max: -1} }

// Exactly accepts count == n (Exactly(0): none).
func Exactly(n int) Range { return Range{min: n, max: n} }

// ParseRange reads a range as a check file writes it: "50%" (a share), "12" (exactly), "10..20",
// ">=5" or "<=3".
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	bad := func() (Range, error) {
		return Range{}, fmt.Errorf("range %q is not N%%, N, LO..HI, >=N or <=N", s)
	}
	count := func(v string) (int, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil && n >= 0
	}
	switch {
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || p < 0 || p > 100 {
			return bad()
		}
		return Share(p / 100), nil
	case strings.HasPrefix(s, ">="):
		if n, ok := count(s[2:]); ok {
			return AtLeast(n), nil
		}
	case strings.HasPrefix(s, "<="):
		if n, ok := count(s[2:]); ok {
			return Between(0, n), nil
		}
	case strings.Contains(s, ".."):
		lo, hi, _ := strings.Cut(s, "..")
		l, ok1 := count(lo)
		h, ok2 := count(hi)
		if ok1 && ok2 && l <= h {
			return Between(l, h), nil
		}
	default:
		if n, ok := count(s); ok {
			return Exactly(n), nil
		}
	}
	return bad()
}

// String writes the range as ParseRange reads it.
func (r Range) String() string {
	switch {
	case r.hasShare:
		return strconv.FormatFloat(r.share*100, 'f', -1, 64) + "%"
	case r.max < 0:
		return ">=" + strconv.Itoa(r.min)
	case r.min == r.max:
		return strconv.Itoa(r.min)
	case r.min == 0:
		return "<=" + strconv.Itoa(r.max)
	}
	return fmt.Sprintf("%d..%d", r.min, r.max)
}

// check tests k of n against the range; accepted describes the counts it accepts for n.
func (r Range) check(k, n int) (accepted string, ok bool) {
	if !r.hasShare {
		return r.String(), k >= r.min && (r.max < 0 || k <= r.max)
	}
	if n == 0 {
		return r.String() + " of nothing", false
	}
	lo, hi := stats.BinomialAcceptance(n, r.share, SplitAlpha)
	accepted = fmt.Sprintf("%s of %d (%d..%d at alpha %g)", r, n, lo, hi, SplitAlpha)
	p, err := stats.BinomialTest(k, n, r.share)
	return accepted, err == nil && p >= SplitAlpha
}

// CheckCounts tests each named class of counts against its range; classes not named are not checked
// (they count towards the total). expected and seen list the classes in name order.
func CheckCounts(counts Counts, want map[string]Range) (expected, seen string, ok bool) {
	n := counts.Total()
	ok = true
	var exp, got []string
	for _, class := range sortedKeys(want) {
		accepted, fits := want[class].check(counts[class], n)
		exp = append(exp, class+" "+accepted)
		mark := ""
		if !fits {
			ok, mark = false, " (outside)"
		}
		got = append(got, fmt.Sprintf("%s %d%s", class, counts[class], mark))
	}
	seen = fmt.Sprintf("%s of %d (all: %s)", strings.Join(got, ", "), n, counts)
	return strings.Join(exp, ", "), seen, ok
}

// ExpectCounts records a failure unless counts fit want (see CheckCounts): a fault or retry shows in
// the numbers, e.g. ExpectCounts("half the requests are aborted", Tally(rs, ByStatus),
// map[string]Range{"HTTP 503": Share(0.5)}).
func (t *T) ExpectCounts(what string, counts Counts, want map[string]Range) bool {
	expected, seen, ok := CheckCounts(counts, want)
	t.Logf("%s: %s", what, seen)
	return t.expectTraffic(ok, what, expected, seen)
}

// ShareSampleSize is how many requests make a share check meaningful: enough that the rarer outcome
// (share p or 1-p) is expected MinExpected times, as SampleSize does for splits.
func ShareSampleSize(p float64) int {
	rare := math.Min(p, 1-p)
	if rare <= 0 {
		return MinExpected
	}
	return int(math.Ceil(MinExpected / rare))
}
