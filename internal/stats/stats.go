// Package stats holds the statistics meshlab's traffic tests need: a chi-square goodness-of-fit test for
// checking that observed splits (a 90/10 weighted route) match their configured weights at a fixed
// significance level, and the sample size that makes such a test meaningful.
package stats

import (
	"fmt"
	"math"
)

// ChiSquare tests observed counts against expected proportions (weights, any positive scale). It returns
// the statistic, the degrees of freedom and the p-value: the probability of a deviation at least this
// large if the counts really follow the weights.
func ChiSquare(observed []int, weights []float64) (stat float64, df int, p float64, err error) {
	if len(observed) != len(weights) || len(observed) < 2 {
		return 0, 0, 0, fmt.Errorf("chi-square needs at least two categories and one weight per category (have %d counts, %d weights)", len(observed), len(weights))
	}
	var n, wsum float64
	for i, o := range observed {
		if weights[i] <= 0 {
			return 0, 0, 0, fmt.Errorf("weight %d is %v; weights must be positive", i, weights[i])
		}
		n += float64(o)
		wsum += weights[i]
	}
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("no observations")
	}
	for i, o := range observed {
		e := n * weights[i] / wsum
		stat += (float64(o) - e) * (float64(o) - e) / e
	}
	df = len(observed) - 1
	return stat, df, upperGamma(float64(df)/2, stat/2), nil
}

// GoodnessOfFit returns an error describing the mismatch when the counts deviate from the weights at
// significance alpha (for example 0.001: a correct proxy fails one run in a thousand).
func GoodnessOfFit(observed []int, weights []float64, alpha float64) error {
	stat, df, p, err := ChiSquare(observed, weights)
	if err != nil {
		return err
	}
	if p < alpha {
		return fmt.Errorf("counts %v do not fit weights %v: chi-square %.2f with %d degrees of freedom, p = %.3g < alpha %g", observed, weights, stat, df, p, alpha)
	}
	return nil
}

// SampleSize is how many observations a goodness-of-fit test over weights needs so that the smallest
// category expects at least minExpected of them. The chi-square approximation wants at least 5; larger
// values give the test power: with 50, a 90/10 split served as 80/20 is caught essentially always.
func SampleSize(weights []float64, minExpected float64) int {
	var sum, smallest float64
	smallest = math.Inf(1)
	for _, w := range weights {
		sum += w
		smallest = math.Min(smallest, w)
	}
	if sum <= 0 || smallest <= 0 {
		return 0
	}
	return int(math.Ceil(minExpected * sum / smallest))
}

// upperGamma is the regularized upper incomplete gamma function Q(a, x), which gives the chi-square
// survival function: P(X >= s) = Q(df/2, s/2). A power series below a+1, a continued fraction above.
func upperGamma(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	prefix := math.Exp(a*math.Log(x) - x - lg)
	if x < a+1 {
		// P(a,x) = x^a e^-x / Gamma(a+1) * sum x^n / ((a+1)...(a+n))
		term, sum := 1/a, 1/a
		for n := 1; n < 1000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return math.Max(0, 1-sum*prefix)
	}
	// Lentz's method for the continued fraction of Q(a,x).
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < 1e-15 {
			break
		}
	}
	return prefix * h
}
