package mem

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// expKey orders the expiry index: by the earlier deadline of a session (wall clock,
// monotonic reading ignored, as a persistent store would keep it), then by stamp, a
// store-wide counter advanced by every ExpiryStore. Keys are unique.
type expKey struct {
	sec   int64
	nsec  int32
	stamp uint64
}

func wallKey(t time.Time) expKey { return expKey{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

func (a expKey) less(b expKey) bool {
	if a.sec != b.sec {
		return a.sec < b.sec
	}
	if a.nsec != b.nsec {
		return a.nsec < b.nsec
	}
	return a.stamp < b.stamp
}

// dueBy reports whether the deadline of a is at or before the wall time of now.
func (a expKey) dueBy(now expKey) bool {
	return a.sec < now.sec || (a.sec == now.sec && a.nsec <= now.nsec)
}

// expNode is one session's entry in the expiry index. Its fields never change.
type expNode struct {
	key  expKey
	id   string
	e    driver.SessionExpiry
	next []*expNode // skip-list forward pointers, one per level
}

const expMaxLevel = 24 // enough for 4^24 sessions with p = 1/4

// expIndex is a skip list of the sessions that have a deadline, ordered by expKey:
// O(log n) insert and remove, and ordered iteration from any key, so that
// ExpiredForEach touches only the sessions that are due. Guarded by conn.expMu.
type expIndex struct {
	head  expNode
	level int
	n     int
	stamp uint64
}

func newExpIndex() *expIndex {
	x := &expIndex{level: 1}
	x.head.next = make([]*expNode, expMaxLevel)
	return x
}

func randomLevel() int {
	// Each level is kept with probability 1/4: count pairs of trailing zero bits.
	l := 1 + bits.TrailingZeros64(rand.Uint64()|1<<62)/2
	return min(l, expMaxLevel)
}

// insert adds a node for session id with deadlines e (e.Next() must be set).
func (x *expIndex) insert(id string, e driver.SessionExpiry) *expNode {
	x.stamp++
	key := wallKey(e.Next())
	key.stamp = x.stamp
	var update [expMaxLevel]*expNode
	p := &x.head
	for l := x.level - 1; l >= 0; l-- {
		for p.next[l] != nil && p.next[l].key.less(key) {
			p = p.next[l]
		}
		update[l] = p
	}
	lvl := randomLevel()
	for l := x.level; l < lvl; l++ {
		update[l] = &x.head
	}
	x.level = max(x.level, lvl)
	n := &expNode{key: key, id: id, e: e, next: make([]*expNode, lvl)}
	for l := range lvl {
		n.next[l] = update[l].next[l]
		update[l].next[l] = n
	}
	x.n++
	return n
}

// remove unlinks n, which must be in the index.
func (x *expIndex) remove(n *expNode) {
	p := &x.head
	for l := x.level - 1; l >= 0; l-- {
		for p.next[l] != nil && p.next[l].key.less(n.key) {
			p = p.next[l]
		}
		if p.next[l] == n {
			p.next[l] = n.next[l]
		}
	}
	for x.level > 1 && x.head.next[x.level-1] == nil {
		x.level--
	}
	x.n--
}

// after returns the first node whose key is greater than k.
func (x *expIndex) after(k expKey) *expNode {
	p := &x.head
	for l := x.level - 1; l >= 0; l-- {
		for p.next[l] != nil && !k.less(p.next[l].key) {
			p = p.next[l]
		}
	}
	return p.next[0]
}

// setExpiryLocked sets (or, for a zero e, removes) the deadlines of sess, which must
// be locked (or conn.mu held exclusively).
func (s *conn) setExpiryLocked(sess *session, e driver.SessionExpiry) {
	if sess.exp == nil && e.IsZero() {
		return
	}
	s.expMu.Lock()
	if sess.exp != nil {
		s.exp.remove(sess.exp)
		sess.exp = nil
	}
	if !e.IsZero() {
		sess.exp = s.exp.insert(sess.id, e)
	}
	s.expMu.Unlock()
}

// ExpiryGet returns the deadlines of session id.
func (s *conn) ExpiryGet(_ context.Context, id string) (driver.SessionExpiry, error) {
	sess, err := s.lockSession(id)
	if err != nil {
		return driver.SessionExpiry{}, err
	}
	n := sess.exp
	s.unlockSession(sess)
	if n == nil {
		return driver.SessionExpiry{}, fmt.Errorf("mem: expiry of session %q: %w", id, driver.ErrNotFound)
	}
	return n.e, nil
}

// ExpiredForEach calls fn for every session whose earlier deadline is at or before
// now, earliest first, walking the deadline index from its start and stopping at the
// first deadline after now: sessions not due are never touched. No lock is held while
// fn runs, and each step looks the index up again, so fn may delete sessions or
// change deadlines. Each session is visited at most once: deadlines stored after the
// call started (by fn or anyone else) are left for the next call.
func (s *conn) ExpiredForEach(_ context.Context, now time.Time, fn driver.ExpiredLoader) error {
	nowKey := wallKey(now)
	var (
		cursor  expKey
		started bool
		limit   uint64 // stamps above it were stored after the call started
	)
	for {
		if err := s.rlock(); err != nil {
			return err
		}
		s.expMu.Lock()
		var n *expNode
		if !started {
			started = true
			limit = s.exp.stamp
			n = s.exp.head.next[0]
		} else {
			n = s.exp.after(cursor)
		}
		for n != nil && n.key.dueBy(nowKey) && n.key.stamp > limit {
			n = n.next[0]
		}
		if n == nil || !n.key.dueBy(nowKey) {
			s.expMu.Unlock()
			s.mu.RUnlock()
			return nil
		}
		cursor = n.key
		id, e := n.id, n.e
		s.expMu.Unlock()
		s.mu.RUnlock()
		if err := fn(id, e); err != nil {
			return err
		}
	}
}
