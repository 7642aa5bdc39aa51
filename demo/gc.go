package demo

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync/atomic"
)

// The broker allocates a little for every message it routes, and with Go's
// default GOGC=100 its heap is small (a few tens of MB in bench/run.sh's
// scenario 1), so the garbage collector runs often: about a sixth of the
// broker's CPU per message at full speed. A larger GOGC cuts that, but a fixed
// one multiplies the peak heap of a broker whose live data is large (queues of
// offline sessions, messages waiting for slow readers).
//
// The demo's policy, applied after every collection: the heap may grow to
// 1+gcPercent/100 times the live heap (GOGC=gcPercent) as long as that stays
// under gcSoftLimit; beyond it the percentage is lowered so the next collection
// starts at gcSoftLimit, but never below Go's default of 100 (so a live heap
// above half the soft limit runs as with GOGC=100, and the limit never makes the
// collector run continuously, as a hard GOMEMLIMIT would). GOGC or GOMEMLIMIT in
// the environment, or -gc-percent 0, turn the policy off (Go's own behaviour).

// Defaults of -gc-percent and -gc-soft-limit.
const (
	defaultGCPercent   = 400
	defaultGCSoftLimit = 64 << 20
)

// gcPolicy is the running policy; stop ends it.
type gcPolicy struct {
	percent int
	limit   uint64
	stopped atomic.Bool
	sample  []metrics.Sample
	current int // the GOGC set last; only the finalizer goroutine changes it after start
}

// startGC applies the policy (percent, soft limit in bytes) unless the
// environment sets the collector's own knobs or percent is not positive; it
// returns nil when it does not. stop ends it and restores GOGC=100.
func startGC(percent int, limit int64) *gcPolicy {
	if percent <= 0 || limit <= 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	p := &gcPolicy{percent: percent, limit: uint64(limit),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	p.adjust()
	p.arm()
	return p
}

// gcPercentFor is the policy's GOGC for a live heap of live bytes.
func gcPercentFor(percent int, limit, live uint64) int {
	if live == 0 || live*uint64(100+percent)/100 <= limit {
		return percent
	}
	return max(100, int(limit*100/live)-100)
}

// adjust sets GOGC for the live heap of the last collection.
func (p *gcPolicy) adjust() {
	metrics.Read(p.sample)
	var live uint64
	if p.sample[0].Value.Kind() == metrics.KindUint64 {
		live = p.sample[0].Value.Uint64()
	}
	if pc := gcPercentFor(p.percent, p.limit, live); pc != p.current {
		p.current = pc
		debug.SetGCPercent(pc)
	}
}

// gcSentinel is garbage whose finalizer runs once per collection cycle.
// (a pointer and 32 bytes: never a tiny allocation, whose finalizer may not run).
type gcSentinel struct {
	_ *int
	_ [32]byte
}

// arm makes the next collection call adjust (and arm again).
func (p *gcPolicy) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		if p.stopped.Load() {
			return
		}
		p.adjust()
		p.arm()
	})
}

// stop ends the policy and restores Go's default.
func (p *gcPolicy) stop() {
	if p == nil {
		return
	}
	p.stopped.Store(true)
	debug.SetGCPercent(100)
}

// writeMemProfile writes the allocation profile (-memprofile) to path.
func writeMemProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
}
