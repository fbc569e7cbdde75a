package stats

import (
	"math"
	"testing"
)

func TestBinomialTest(t *testing.T) {
	// Reference p-values of the exact two-sided test (R's binom.test).
	tests := []struct {
		k, n int
		p    float64
		want float64
	}{
		{5, 10, 0.5, 1},
		{0, 10, 0.5, 0.001953},
		{2, 10, 0.5, 0.1094},
		{60, 100, 0.5, 0.05689},
		{30, 100, 0.5, 0.0000785},
		{3, 20, 0.1, 0.4447}, // P(X=0) + P(X=3) + P(X>=4)
		{0, 5, 0, 1},
		{1, 5, 0, 0},
		{5, 5, 1, 1},
	}
	for _, tt := range tests {
		got, err := BinomialTest(tt.k, tt.n, tt.p)
		if err != nil || math.Abs(got-tt.want) > 1e-3*math.Max(tt.want, 1e-3) {
			t.Errorf("BinomialTest(%d, %d, %v) = %.6g, %v; want %.6g", tt.k, tt.n, tt.p, got, err, tt.want)
		}
	}
	for _, bad := range [][3]float64{{-1, 10, 0.5}, {11, 10, 0.5}, {1, 0, 0.5}, {1, 10, 1.5}} {
		if _, err := BinomialTest(int(bad[0]), int(bad[1]), bad[2]); err == nil {
			t.Errorf("BinomialTest%v accepted", bad)
		}
	}
}

func TestBinomialAcceptance(t *testing.T) {
	lo, hi := BinomialAcceptance(100, 0.5, 0.001)
	// 33 of 100 has p = 0.00091 < 0.001, 34 has p = 0.0018.
	if lo != 34 || hi != 66 {
		t.Errorf("BinomialAcceptance(100, 0.5, 0.001) = %d..%d, want 34..66", lo, hi)
	}
	if lo, hi := BinomialAcceptance(10, 1, 0.001); lo != 10 || hi != 10 {
		t.Errorf("BinomialAcceptance(10, 1) = %d..%d, want 10..10", lo, hi)
	}
}
