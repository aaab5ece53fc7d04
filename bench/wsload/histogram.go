package wsload

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout. Values below subCount are counted exactly. Above, every
// power-of-two range [2^k, 2^(k+1)) is split into halfCount equal
// sub-buckets, the idea HdrHistogram uses: a fixed, small table (about 58 KiB)
// covers every int64 with a relative error of at most 1/halfCount (0.8 %),
// which is far below the noise of a latency measurement.
const (
	subBits   = 8
	subCount  = 1 << subBits
	halfCount = subCount / 2
	// numBuckets ends with the bucket of math.MaxInt64, whose bit length
	// is 63.
	numBuckets = (63-subBits)*halfCount + subCount
)

// Histogram counts non-negative int64 values, here durations in
// nanoseconds. Record is lock-free and safe from many goroutines; reading
// (Quantile, Stats) while recording is safe but sees a moving picture.
// The zero value is ready to use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Int64
	// min is stored plus one so that the zero value means "nothing yet".
	minPlus1 atomic.Int64
	max      atomic.Int64
}

// bucketIndex returns the bucket v falls in; v must be non-negative.
func bucketIndex(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits
	return shift*halfCount + int(uint64(v)>>shift)
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := i/halfCount - 1
	m := int64(i - shift*halfCount)
	lo = m << shift
	hi = lo + (int64(1) << shift) - 1
	return lo, hi
}

// Record counts one value. Negative values count as zero.
func (h *Histogram) Record(v int64) {
	v = max(v, 0)
	h.counts[bucketIndex(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		old := h.max.Load()
		if v <= old || h.max.CompareAndSwap(old, v) {
			break
		}
	}
	for {
		old := h.minPlus1.Load()
		if (old != 0 && v+1 >= old) || h.minPlus1.CompareAndSwap(old, v+1) {
			break
		}
	}
}

// RecordDuration counts d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value, exactly; 0 when empty.
func (h *Histogram) Max() int64 { return h.max.Load() }

// Min returns the smallest recorded value, exactly; 0 when empty.
func (h *Histogram) Min() int64 { return max(h.minPlus1.Load()-1, 0) }

// Mean returns the exact mean of the recorded values; 0 when empty.
func (h *Histogram) Mean() float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0 < q ≤ 1): the largest value
// of the bucket holding the ceil(q·count)-th smallest value, clamped to the
// recorded min and max. Reporting the bucket's top errs on the pessimistic
// side, as latency reports should. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(max(hi, h.Min()), h.Max())
		}
	}
	// Only reachable while another goroutine is recording.
	return h.Max()
}

// LatencyStats is a summary of a Histogram of nanosecond durations, in
// milliseconds so that it reads well in JSON.
type LatencyStats struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Stats summarizes h, whose values are nanoseconds.
func (h *Histogram) Stats() LatencyStats {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return LatencyStats{
		Count:  h.Count(),
		MinMs:  ms(h.Min()),
		MeanMs: h.Mean() / 1e6,
		P50Ms:  ms(h.Quantile(0.50)),
		P90Ms:  ms(h.Quantile(0.90)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.Max()),
	}
}
