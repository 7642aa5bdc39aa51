package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in microseconds in log-linear buckets: exact below
// 256µs, then 128 buckets per power of two, so a percentile is off by less than 1%
// while the memory stays fixed however many messages a run has.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    int64
}

const (
	histSubBits = 7
	histBuckets = (64-histSubBits)<<histSubBits + 2<<histSubBits
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 2<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	top := int(v >> shift)
	return shift<<histSubBits + top
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < 2<<histSubBits {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	top := int64(i&(1<<histSubBits-1) | 1<<histSubBits)
	return (top+1)<<shift - 1
}

// Record adds one latency.
func (h *histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		// A sender's clock ahead of the receiver's would give negative latencies;
		// both run in this process, so this only happens across a clock step.
		us = 0
	}
	h.counts[bucketOf(us)]++
	h.n++
	h.sum += float64(us)
	h.max = max(h.max, us)
}

// Count is the number of recorded latencies.
func (h *histogram) Count() uint64 { return h.n }

// Max is the largest recorded latency.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average latency (0 when empty).
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.n)) * time.Microsecond
}

// Quantile returns the latency at or below which a fraction q of the recorded
// latencies fall (0 when empty); it never exceeds Max.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max)) * time.Microsecond
		}
	}
	return h.Max()
}
