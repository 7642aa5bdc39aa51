package broker

import (
	"github.com/mqttstore/mqttstore/persistence"
)

// queueHead holds, for the delivery pump of one connection, the first packets of
// the session's stored queue that it has read but not yet moved in flight, and
// the read of the next ones when one is under way. Reading a page of pumpPage
// packets and moving it by half windows costs one read per several moves; the
// next read starts, when the rows held run short, at the same time as a move's
// commit, so that on a client-server store (PostgreSQL) neither waits for the
// other and the pump's next move finds its page read.
//
// It is correct because only the pump of the session's connection removes
// packets from the queue, one move at a time: the rows held stay at the queue's
// head until the pump moves them. A read started during a move may or may not
// see that move's deletes, so it skips the packets that move took (skip). A read
// returns the head of the queue at the time it runs, which includes every row
// still held and any packet committed since, even one with a lower sequence
// number than rows already moved (concurrent fan-outs may commit out of sequence
// order), so replacing the rows held by a completed read loses nothing. When the
// connection detaches, everything held is dropped (detach).
type queueHead struct {
	c    *conn
	rows []*persistence.PersistedPacket // read, not moved yet, in queue order
	read *pageRead                      // under way or done, not yet taken; nil when none
}

// pageRead is one read of the head of a stored queue.
type pageRead struct {
	done chan struct{}
	page []*persistence.PersistedPacket
	err  error
	skip map[uint64]bool // sequence numbers of the packets moved since it started
}

// queuePage returns up to max packets from the head of c's session's stored
// queue, taken out of the rows held for c (see queueHead), after the read under
// way when they are fewer than max, or read now when there are none. The caller
// moves every packet returned in flight before it calls queuePage again.
func (b *Broker) queuePage(c *conn, max int) ([]*persistence.PersistedPacket, error) {
	s := c.sess
	s.mu.Lock()
	if s.conn != c { // detached: the caller sees that too, and stops
		s.mu.Unlock()
		return nil, nil
	}
	h := s.head
	if h == nil || h.c != c {
		h = &queueHead{c: c}
		s.head = h
	}
	r := h.read
	if len(h.rows) >= max || r == nil {
		page := h.take(max)
		if r != nil { // the read under way may see these moved, or not
			for _, p := range page {
				r.skip[p.Seq] = true
			}
		}
		s.mu.Unlock()
		if len(page) > 0 {
			return page, nil
		}
		return b.readQueue(s.id, max)
	}
	h.read = nil
	s.mu.Unlock()
	<-r.done
	if r.err != nil {
		// Read again: the error may have been passing.
		page, err := b.readQueue(s.id, max)
		if err == nil {
			s.mu.Lock()
			if s.head == h {
				h.rows = nil
			}
			s.mu.Unlock()
		}
		return page, err
	}
	rows := make([]*persistence.PersistedPacket, 0, len(r.page))
	for _, p := range r.page {
		if !r.skip[p.Seq] {
			rows = append(rows, p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head != h {
		return rows[:min(len(rows), max)], nil
	}
	h.rows = rows
	return h.take(max), nil
}

// take removes up to max rows from the front of h.rows and returns them.
// Caller holds the session's mu.
func (h *queueHead) take(max int) []*persistence.PersistedPacket {
	n := min(len(h.rows), max)
	page := h.rows[:n:n]
	h.rows = h.rows[n:]
	return page
}

// readAheadIfShort starts reading the head of c's session's queue when the rows
// held for c are fewer than four moves of next and more are queued than held, so
// that the read has the time of three moves to complete: page is the move about
// to be committed, whose packets the read skips. Caller holds the session's mu.
func (b *Broker) readAheadIfShort(c *conn, page []*persistence.PersistedPacket, next int) {
	s := c.sess
	h := s.head
	if h == nil || h.c != c || h.read != nil || len(h.rows) >= 4*next || s.queued-len(page) <= len(h.rows) {
		return
	}
	r := &pageRead{done: make(chan struct{}), skip: make(map[uint64]bool, len(page))}
	for _, p := range page {
		r.skip[p.Seq] = true
	}
	h.read = r
	max := min(s.queued, pumpPage)
	b.wg.Add(1) // the store stays open until it ends (Close waits for wg)
	go func() {
		defer b.wg.Done()
		defer close(r.done)
		r.page, r.err = b.readQueue(s.id, max)
	}()
}

// readQueue reads up to max packets from the head of session id's queue.
func (b *Broker) readQueue(id string, max int) ([]*persistence.PersistedPacket, error) {
	page := make([]*persistence.PersistedPacket, 0, max)
	ctx, cancel := b.storeCtx()
	defer cancel()
	err := b.sess.PacketsForEach(ctx, id, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		page = append(page, p)
		if len(page) >= max {
			return false, persistence.ErrStopIteration
		}
		return false, nil
	})
	return page, err
}
