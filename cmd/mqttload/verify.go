package main

import (
	"fmt"
	"sync"
	"time"
)

// tracker is the run's bookkeeping: which messages publishers got acknowledged
// (owed to their subscribers), which arrived where and how often, and the latency of
// each arrival. One mutex guards it all: an acknowledgement and the arrival of the
// same message race, and both must see the other's effect.
type tracker struct {
	mu     sync.Mutex
	pubs   int
	subs   int
	fanout bool

	acked       [][]bool           // [publisher][seq]: PUBACK/PUBCOMP received
	ackedN      int64              // number of true entries in acked
	got         []map[uint64]uint8 // [subscriber][msgKey]: arrivals, saturating
	outstanding []int              // [subscriber]: owed and not yet arrived
	owedTotal   int64              // acknowledged (message, subscriber) pairs
	watch       []chan struct{}    // [subscriber]: closed when outstanding drops to 0

	received   int64 // arrivals of this run's messages, duplicates included
	duplicates int64 // arrivals beyond the first of one message at one subscriber
	misrouted  int64 // arrivals at a subscriber the message was not addressed to
	stale      int64 // arrivals of other runs' messages or foreign payloads
	firstRecv  time.Time
	lastRecv   time.Time
	lat        histogram
}

func newTracker(pubs, subs int, fanout bool) *tracker {
	t := &tracker{
		pubs:        pubs,
		subs:        subs,
		fanout:      fanout,
		acked:       make([][]bool, pubs),
		got:         make([]map[uint64]uint8, subs),
		outstanding: make([]int, subs),
		watch:       make([]chan struct{}, subs),
	}
	for j := range t.got {
		t.got[j] = make(map[uint64]uint8)
	}
	return t
}

// msgKey packs a publisher index and a sequence number; 2^24 publishers and 2^40
// messages per publisher are far beyond what one run can produce.
func msgKey(pub int, seq uint64) uint64 { return uint64(pub)<<40 | seq&(1<<40-1) }

// target is the subscriber message (pub, seq) is addressed to when not fanning out:
// message g = seq*pubs + pub goes to subscriber g mod subs.
func target(pubs, subs, pub int, seq uint64) int {
	return int((seq*uint64(pubs) + uint64(pub)) % uint64(subs))
}

// forTargets calls f for every subscriber that message (pub, seq) is owed to.
func (t *tracker) forTargets(pub int, seq uint64, f func(j int)) {
	if t.subs == 0 {
		return
	}
	if t.fanout {
		for j := 0; j < t.subs; j++ {
			f(j)
		}
		return
	}
	f(target(t.pubs, t.subs, pub, seq))
}

func (t *tracker) isAcked(pub int, seq uint64) bool {
	a := t.acked[pub]
	return seq < uint64(len(a)) && a[seq]
}

// Acked records that the publisher got the acknowledgement of (pub, seq): from now on
// the message is owed to its subscribers.
func (t *tracker) Acked(pub int, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pub < 0 || pub >= t.pubs || t.isAcked(pub, seq) {
		return
	}
	a := t.acked[pub]
	for uint64(len(a)) <= seq {
		a = append(a, false)
	}
	a[seq] = true
	t.acked[pub] = a
	t.ackedN++
	key := msgKey(pub, seq)
	t.forTargets(pub, seq, func(j int) {
		t.owedTotal++
		if t.got[j][key] == 0 {
			t.outstanding[j]++
		}
	})
}

// Received records the arrival of (pub, seq) at subscriber sub, sent at sent.
func (t *tracker) Received(sub, pub int, seq uint64, sent, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pub < 0 || pub >= t.pubs || sub < 0 || sub >= t.subs {
		t.stale++
		return
	}
	if !t.fanout && target(t.pubs, t.subs, pub, seq) != sub {
		t.misrouted++
		return
	}
	t.received++
	if t.firstRecv.IsZero() {
		t.firstRecv = now
	}
	t.lastRecv = now
	t.lat.Record(now.Sub(sent))
	key := msgKey(pub, seq)
	c := t.got[sub][key]
	if c > 0 {
		t.duplicates++
	}
	if c < 255 {
		t.got[sub][key] = c + 1
	}
	if c == 0 && t.isAcked(pub, seq) {
		t.outstanding[sub]--
		if t.outstanding[sub] == 0 && t.watch[sub] != nil {
			close(t.watch[sub])
			t.watch[sub] = nil
		}
	}
}

// Stale counts an arrival that is not one of this run's messages.
func (t *tracker) Stale() {
	t.mu.Lock()
	t.stale++
	t.mu.Unlock()
}

// Watch returns a channel closed once nothing owed to subscriber sub is missing.
func (t *tracker) Watch(sub int) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	if t.outstanding[sub] == 0 {
		close(ch)
		return ch
	}
	if t.watch[sub] != nil {
		return t.watch[sub]
	}
	t.watch[sub] = ch
	return ch
}

// Outstanding is the number of owed (message, subscriber) pairs not yet arrived.
func (t *tracker) Outstanding() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, o := range t.outstanding {
		n += int64(o)
	}
	return n
}

// counts is a consistent snapshot of the counters the progress line shows.
type counts struct {
	acked, received, outstanding int64
}

func (t *tracker) Counts() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out int64
	for _, o := range t.outstanding {
		out += int64(o)
	}
	return counts{acked: t.ackedN, received: t.received, outstanding: out}
}

// verification is the outcome of a run's bookkeeping.
type verification struct {
	Owed       int64    `json:"owed"`       // acknowledged (message, subscriber) pairs
	Missing    int64    `json:"missing"`    // owed pairs that never arrived
	Duplicates int64    `json:"duplicates"` // second and later arrivals
	Misrouted  int64    `json:"misrouted"`  // arrivals at the wrong subscriber
	Stale      int64    `json:"stale"`      // other runs' messages
	Examples   []string `json:"missing_examples,omitempty"`
}

// Verify compares what was owed with what arrived.
func (t *tracker) Verify() verification {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := verification{Owed: t.owedTotal, Duplicates: t.duplicates, Misrouted: t.misrouted, Stale: t.stale}
	for pub, a := range t.acked {
		for seq, ok := range a {
			if !ok {
				continue
			}
			key := msgKey(pub, uint64(seq))
			t.forTargets(pub, uint64(seq), func(j int) {
				if t.got[j][key] == 0 {
					v.Missing++
					if len(v.Examples) < 10 {
						v.Examples = append(v.Examples, fmt.Sprintf("publisher %d seq %d → subscriber %d", pub, seq, j))
					}
				}
			})
		}
	}
	return v
}

// ackedRanges lists each publisher's acknowledged sequence numbers as [from, to)
// ranges, the compact form the state file keeps between the publish and drain phases.
func (t *tracker) ackedRanges() [][][2]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][][2]uint64, len(t.acked))
	for pub, a := range t.acked {
		var rs [][2]uint64
		for seq := 0; seq < len(a); {
			if !a[seq] {
				seq++
				continue
			}
			from := seq
			for seq < len(a) && a[seq] {
				seq++
			}
			rs = append(rs, [2]uint64{uint64(from), uint64(seq)})
		}
		out[pub] = rs
	}
	return out
}

// latencySummary snapshots the latency histogram.
type latencySummary struct {
	P50, P99, Max, Mean time.Duration
	N                   uint64
}

func (t *tracker) Latency() latencySummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return latencySummary{P50: t.lat.Quantile(0.5), P99: t.lat.Quantile(0.99), Max: t.lat.Max(), Mean: t.lat.Mean(), N: t.lat.Count()}
}

// arrivals returns the first and last arrival times of this run's messages.
func (t *tracker) arrivals() (first, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstRecv, t.lastRecv
}
