package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestChiSquarePValues(t *testing.T) {
	// Reference values of the chi-square survival function.
	tests := []struct {
		stat float64
		df   int
		want float64
	}{
		{3.841, 1, 0.05},
		{10.828, 1, 0.001},
		{5.991, 2, 0.05},
		{0, 1, 1},
		{1, 3, 0.8013},
		{20, 4, 0.000499},
	}
	for _, tt := range tests {
		got := upperGamma(float64(tt.df)/2, tt.stat/2)
		if math.Abs(got-tt.want) > 1e-3*math.Max(1, tt.want*10) {
			t.Errorf("Q(%d/2, %v/2) = %.5f, want %.5f", tt.df, tt.stat, got, tt.want)
		}
	}
}

func TestGoodnessOfFit(t *testing.T) {
	w := []float64{90, 10}
	n := SampleSize(w, 50)
	if n != 500 {
		t.Fatalf("SampleSize(90/10, 50) = %d, want 500", n)
	}
	if err := GoodnessOfFit([]int{452, 48}, w, 0.001); err != nil {
		t.Errorf("a fair 90/10 sample was rejected: %v", err)
	}
	if err := GoodnessOfFit([]int{400, 100}, w, 0.001); err == nil {
		t.Errorf("an 80/20 sample was accepted as 90/10")
	}
	if err := GoodnessOfFit([]int{500, 0}, w, 0.001); err == nil {
		t.Errorf("a 100/0 sample was accepted as 90/10")
	}
	// The test at alpha 0.001 rejects a true 90/10 source about once per thousand runs.
	r := rand.New(rand.NewPCG(1, 2))
	rejected := 0
	for range 2000 {
		c := []int{0, 0}
		for range n {
			if r.IntN(100) < 90 {
				c[0]++
			} else {
				c[1]++
			}
		}
		if GoodnessOfFit(c, w, 0.001) != nil {
			rejected++
		}
	}
	if rejected > 10 {
		t.Errorf("rejected %d of 2000 fair samples at alpha 0.001", rejected)
	}
}
