package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// budget is a count of bytes held against a limit, with a way to wait until
// some are released. Taking never blocks; waiters ask for a channel that is
// closed at the next release.
type budget struct {
	limit int64
	used  atomic.Int64
	// stalled is set when a waiter gave up on this budget, and cleared when
	// it is half free again: while it is set droppable packets are refused
	// without waiting (see Limits.MaxConnQueueBytes).
	stalled atomic.Bool

	waiting atomic.Bool // someone holds freed; release must close it
	mu      sync.Mutex
	freed   chan struct{}
}

// tryTake takes n bytes if they fit, or if nothing is held (a packet larger
// than the whole budget still goes through an empty queue).
func (bg *budget) tryTake(n int64) bool {
	for {
		cur := bg.used.Load()
		if cur > 0 && cur+n > bg.limit {
			return false
		}
		if bg.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// force takes n bytes whatever the limit.
func (bg *budget) force(n int64) { bg.used.Add(n) }

// release gives back n bytes and wakes the waiters.
func (bg *budget) release(n int64) {
	if n == 0 {
		return
	}
	left := bg.used.Add(-n)
	if bg.stalled.Load() && left <= bg.limit/2 {
		bg.stalled.Store(false)
	}
	if bg.waiting.Load() {
		bg.mu.Lock()
		if bg.freed != nil {
			close(bg.freed)
			bg.freed = nil
		}
		bg.waiting.Store(false)
		bg.mu.Unlock()
	}
}

// wait returns a channel closed at the next release. A caller takes it before
// trying again, so that a release between the try and the wait is not missed.
func (bg *budget) wait() <-chan struct{} {
	bg.mu.Lock()
	defer bg.mu.Unlock()
	if bg.freed == nil {
		bg.freed = make(chan struct{})
	}
	bg.waiting.Store(true)
	return bg.freed
}

// cost is what an outgoing item counts against the budgets: the bytes it
// holds (shared encodings are counted for every connection they are queued for,
// which overstates, never understates).
func (it *outItem) cost() int64 {
	switch {
	case it.pub != nil:
		return int64(len(it.pub.Topic)+len(it.pub.Payload)+len(it.pub.Properties.CorrelationData)) + 64
	case it.ack != 0:
		return 4
	default:
		return int64(len(it.b))
	}
}

// takeOut reserves n bytes of the connection's and the broker's outgoing
// budgets for a droppable packet. When either is full it waits up to
// Limits.BackpressureWait for the writers to make room — the caller is the
// publisher's reader, so the broker stops reading from the publisher meanwhile
// — unless the full budget is already marked stalled. It reports whether the
// bytes were taken.
func (c *conn) takeOut(n int64) bool {
	b := c.b
	if c.outq.tryTake(n) { // the usual case: no waiter registered, no lock
		if b.outMem.tryTake(n) {
			return true
		}
		c.outq.release(n)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		cw, bw := c.outq.wait(), b.outMem.wait()
		full := &c.outq
		if c.outq.tryTake(n) {
			if b.outMem.tryTake(n) {
				return true
			}
			c.outq.release(n)
			full = &b.outMem
		}
		if full.stalled.Load() || b.limits.BackpressureWait < 0 {
			return false
		}
		if timer == nil {
			timer = time.NewTimer(b.limits.BackpressureWait)
		}
		select {
		case <-cw:
		case <-bw:
		case <-c.done:
			return false
		case <-timer.C:
			full.stalled.Store(true)
			if full == &c.outq {
				c.b.log.Warn("broker: client does not read; dropping QoS 0 messages for it until it does",
					"client", c.info.ID, "queued_bytes", c.outq.used.Load(), "limit", c.outq.limit)
			} else {
				c.b.log.Warn("broker: outgoing memory budget full; dropping QoS 0 messages until clients read",
					"bytes", b.outMem.used.Load(), "limit", b.outMem.limit)
			}
			return false
		}
	}
}

// releaseOut gives back what an item written or discarded took.
func (c *conn) releaseOut(n int64) {
	if n == 0 {
		return
	}
	c.outq.release(n)
	c.b.outMem.release(n)
}

// queueInMemory puts a message in the memory queue of s, a session that is
// not stored, charging its bytes to the broker-wide budget
// (Limits.MaxBufferedBytes) until the pump moves it in flight or the session
// ends (dropMemQueue). When the budget is full the message is dropped for s
// (Stats.Dropped) rather than waited for: memory queues are what a client that
// does not acknowledge leaves behind, and waiting would pause the publisher
// for it. It also drops it when s has ended. Caller holds s.mu.
func (b *Broker) queueInMemory(s *session, q queuedMsg) bool {
	if s.gone {
		return false
	}
	if !b.outMem.tryTake(int64(q.size)) {
		b.stats.dropped.Add(1)
		if !s.fullLog {
			s.fullLog = true
			b.log.Warn("broker: outgoing memory budget full; refusing new messages for a session queue in memory",
				"client", s.id, "queued", s.queued, "bytes", b.outMem.used.Load(), "limit", b.outMem.limit)
		}
		return false
	}
	s.memQueue = append(s.memQueue, q)
	s.queued++
	s.queuedBytes += int64(q.size)
	return true
}

// popMemQueue takes the first message of s's memory queue and gives its bytes
// back to the broker-wide budget. Caller holds s.mu; the queue is not empty.
func (b *Broker) popMemQueue(s *session) queuedMsg {
	q := s.memQueue[0]
	s.memQueue[0] = queuedMsg{}
	s.memQueue = s.memQueue[1:]
	s.queued--
	s.queuedBytes -= int64(q.size)
	b.outMem.release(int64(q.size))
	return q
}

// dropMemQueue empties the memory queue of s, which has ended, and gives its
// bytes back to the broker-wide budget. Caller holds s.mu.
func (b *Broker) dropMemQueue(s *session) {
	var n int64
	for _, q := range s.memQueue {
		n += int64(q.size)
	}
	s.memQueue = nil
	if !s.stored {
		s.queued, s.queuedBytes = 0, 0
	}
	b.outMem.release(n)
}

// admit decides whether a newly accepted connection is served, under
// Limits.MaxConnections and Limits.MaxConnectionRate. A connection admitted
// must be given back with leave.
func (b *Broker) admit() bool {
	if lim := b.limits.MaxConnections; lim > 0 && b.live.Add(1) > int64(lim) {
		b.live.Add(-1)
		b.refuse("connection limit reached", "limit", lim)
		return false
	} else if lim <= 0 {
		b.live.Add(1)
	}
	d, ok := b.rate.reserve(time.Now(), connRateWait)
	if !ok {
		b.live.Add(-1)
		b.refuse("connection rate limit reached", "per_second", b.limits.MaxConnectionRate)
		return false
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.stopBG: // shutting down
			b.live.Add(-1)
			return false
		}
	}
	return true
}

// connRateWait bounds how long a new connection waits for its turn under
// Limits.MaxConnectionRate before it is refused.
const connRateWait = 2 * time.Second

// leave ends what admit counted.
func (b *Broker) leave() { b.live.Add(-1) }

// refuseLogEvery bounds how often refused connections are logged.
const refuseLogEvery = 10 * time.Second

// refuse counts a refused connection and logs it, at most once per
// refuseLogEvery with the count since the last log.
func (b *Broker) refuse(why string, args ...any) {
	b.stats.refused.Add(1)
	n := b.refusedUnlogged.Add(1)
	now := time.Now().UnixNano()
	last := b.refusedLogAt.Load()
	if now-last < int64(refuseLogEvery) || !b.refusedLogAt.CompareAndSwap(last, now) {
		return
	}
	b.refusedUnlogged.Add(-n)
	b.log.Warn("broker: connection refused: "+why, append(args, "refused", n)...)
}

// rateLimiter is a token bucket: rate tokens per second, at most rate held;
// tokens taken ahead of time make it negative.
type rateLimiter struct {
	rate   float64 // <= 0: no limit
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newRateLimiter(rate int) *rateLimiter {
	return &rateLimiter{rate: float64(rate), tokens: float64(rate)}
}

// reserve takes a token at now and returns how long to wait until it is
// there (0 when it is), unless that is longer than maxWait: then it takes
// nothing and reports false.
func (r *rateLimiter) reserve(now time.Time, maxWait time.Duration) (time.Duration, bool) {
	if r.rate <= 0 {
		return 0, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.After(r.last) {
		r.tokens = min(r.rate, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return 0, true
	}
	wait := time.Duration((1 - r.tokens) / r.rate * float64(time.Second))
	if wait > maxWait {
		return 0, false
	}
	r.tokens--
	return wait, true
}
