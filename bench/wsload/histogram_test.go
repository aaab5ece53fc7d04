package wsload

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatalf(
			"empty histogram: count %d p50 %d max %d min %d mean %v",
			h.Count(), h.Quantile(0.5), h.Max(), h.Min(), h.Mean(),
		)
	}
	if s := h.Stats(); s != (LatencyStats{}) {
		t.Fatalf(
			"empty stats: %+v",
			s,
		)
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	cases := []struct {
		name string
		q    float64
		want int64
	}{
		{
			name: "p0 is the minimum",
			q:    0,
			want: 1,
		},
		{
			name: "p50",
			q:    0.5,
			want: 50,
		},
		{
			name: "p99",
			q:    0.99,
			want: 99,
		},
		{
			name: "p99.9 rounds up to the last",
			q:    0.999,
			want: 100,
		},
		{
			name: "p100 is the maximum",
			q:    1,
			want: 100,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.Quantile(tc.q); got != tc.want {
				t.Fatalf(
					"Quantile(%v) = %d, want %d",
					tc.q, got, tc.want,
				)
			}
		})
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Fatalf(
			"count %d min %d max %d mean %v",
			h.Count(), h.Min(), h.Max(), h.Mean(),
		)
	}
}

func TestHistogramBucketsTileTheRange(t *testing.T) {
	// Every bucket starts right after the previous one ends, and every
	// value maps into the bucket whose bounds hold it.
	prevHi := int64(-1)
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf(
				"bucket %d starts at %d, want %d",
				i, lo, prevHi+1,
			)
		}
		if hi < lo {
			t.Fatalf(
				"bucket %d: hi %d < lo %d",
				i, hi, lo,
			)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketIndex(v); got != i {
				t.Fatalf(
					"bucketIndex(%d) = %d, want %d",
					v, got, i,
				)
			}
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf(
			"last bucket ends at %d, want MaxInt64",
			prevHi,
		)
	}
}

func TestHistogramRelativeError(t *testing.T) {
	// Log-uniform values from 1 µs to 10 s in nanoseconds, the range of
	// round trips, checked against exact percentiles of the sorted values.
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		v := int64(math.Exp(math.Log(1e3) + r.Float64()*(math.Log(1e10)-math.Log(1e3))))
		vals[i] = v
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact {
			t.Errorf(
				"q=%v: got %d below the exact %d; the top of the bucket is reported",
				q, got, exact,
			)
		}
		if rel := float64(got-exact) / float64(exact); rel > 1.0/halfCount {
			t.Errorf(
				"q=%v: got %d, exact %d, relative error %.4f > %.4f",
				q, got, exact, rel, 1.0/halfCount,
			)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf(
			"min/max: got %d/%d, want %d/%d",
			h.Min(), h.Max(), vals[0], vals[len(vals)-1],
		)
	}
}

func TestHistogramNegativeCountsAsZero(t *testing.T) {
	var h Histogram
	h.Record(-5)
	if h.Count() != 1 || h.Max() != 0 || h.Quantile(1) != 0 {
		t.Fatalf(
			"count %d max %d p100 %d",
			h.Count(), h.Max(), h.Quantile(1),
		)
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	const workers, each = 8, 10_000
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h.Record(int64(w*each + i + 1))
			}
		})
	}
	wg.Wait()
	if h.Count() != workers*each || h.Min() != 1 || h.Max() != workers*each {
		t.Fatalf(
			"count %d min %d max %d",
			h.Count(), h.Min(), h.Max(),
		)
	}
}
