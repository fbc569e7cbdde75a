package stats

import (
	"fmt"
	"math"
)

// BinomialTest is the exact two-sided binomial test: the probability, if each of n trials succeeds with
// probability p, of a count at most as likely as k (the sum of P(X = i) over every i with P(X = i) <=
// P(X = k)). A fault injected into 50% of requests that aborted k of n fits when the result is at
// least alpha.
func BinomialTest(k, n int, p float64) (float64, error) {
	if n <= 0 || k < 0 || k > n {
		return 0, fmt.Errorf("binomial test needs 0 <= k <= n and n > 0 (have k %d, n %d)", k, n)
	}
	if p < 0 || p > 1 || math.IsNaN(p) {
		return 0, fmt.Errorf("probability %v is not within [0, 1]", p)
	}
	pk := binomialPMF(k, n, p)
	// Relative slack so that counts exactly as likely as k (the mirror image when p = 0.5) are not lost
	// to rounding.
	limit := pk * (1 + 1e-7)
	var sum float64
	for i := 0; i <= n; i++ {
		if pi := binomialPMF(i, n, p); pi <= limit {
			sum += pi
		}
	}
	return math.Min(sum, 1), nil
}

// BinomialAcceptance is the range of counts out of n that BinomialTest accepts at alpha for
// probability p: lo <= k <= hi.
func BinomialAcceptance(n int, p, alpha float64) (lo, hi int) {
	lo, hi = -1, -1
	for k := 0; k <= n; k++ {
		if pv, err := BinomialTest(k, n, p); err == nil && pv >= alpha {
			if lo < 0 {
				lo = k
			}
			hi = k
		}
	}
	return lo, hi
}

// binomialPMF is P(X = k) for X ~ Binomial(n, p), through logarithms so that large n does not overflow.
func binomialPMF(k, n int, p float64) float64 {
	switch {
	case p == 0:
		return boolFloat(k == 0)
	case p == 1:
		return boolFloat(k == n)
	}
	lc := lgamma(float64(n+1)) - lgamma(float64(k+1)) - lgamma(float64(n-k+1))
	return math.Exp(lc + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
