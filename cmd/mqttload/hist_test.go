package main

import (
	"math"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose upper bound is at or above it and within
	// 1% of it, and bucket indexes never go backwards as values grow.
	prev := -1
	for _, v := range []int64{0, 1, 2, 127, 128, 255, 256, 257, 511, 512, 1000, 1023, 1024, 99999, 1 << 30, 1<<40 + 12345, math.MaxInt64} {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < previous %d", v, b, prev)
		}
		prev = b
		if b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d beyond %d buckets", v, b, histBuckets)
		}
		hi := bucketHigh(b)
		if hi < v {
			t.Fatalf("bucketHigh(bucketOf(%d)) = %d < value", v, hi)
		}
		if v > 0 && float64(hi-v)/float64(v) > 0.01 {
			t.Fatalf("bucket of %d reaches %d: more than 1%% off", v, hi)
		}
	}
	if bucketOf(-5) != 0 {
		t.Fatalf("negative values go to bucket 0")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram is not all zero")
	}
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	check := func(q float64, want time.Duration) {
		t.Helper()
		got := h.Quantile(q)
		if d := math.Abs(float64(got-want)) / float64(want); d > 0.01 {
			t.Errorf("Quantile(%v) = %v, want %v within 1%%", q, got, want)
		}
	}
	check(0.5, 5000*time.Microsecond)
	check(0.99, 9900*time.Microsecond)
	check(1, 10000*time.Microsecond)
	check(0, 1*time.Microsecond)
	if h.Max() != 10*time.Millisecond {
		t.Errorf("Max = %v", h.Max())
	}
	if h.Count() != 10000 {
		t.Errorf("Count = %d", h.Count())
	}
	if m := h.Mean(); m < 5000*time.Microsecond || m > 5001*time.Microsecond {
		t.Errorf("Mean = %v", m)
	}
	// One slow outlier moves p99 only when it is more than 1% of the samples, and
	// the quantile never reports more than the maximum.
	h.Record(3 * time.Second)
	check(0.99, 9900*time.Microsecond)
	if h.Quantile(1) != 3*time.Second {
		t.Errorf("Quantile(1) = %v, want the max", h.Quantile(1))
	}
	// Negative latencies (a clock step) count as zero rather than corrupting buckets.
	h.Record(-time.Second)
	if h.Quantile(0) != 0 {
		t.Errorf("negative latency not clamped: %v", h.Quantile(0))
	}
}
