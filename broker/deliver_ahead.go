package broker

import (
	"github.com/mqttstore/mqttstore/persistence"
)

// pageAhead is a read of a stored queue's next page, started by the delivery pump
// as soon as a move in flight commits: while the moved messages travel to the
// client and back, the read is done, so when the acknowledgements free the half
// window the next move commits at once instead of reading first. On a
// client-server store (PostgreSQL) that takes one of the two round trips per half
// window off the path the client waits on; on an embedded one it is a read that
// would have happened anyway.
//
// It is safe because only the pump of the session's connection removes packets
// from the queue, one move at a time, in order: the page read after a move is
// still the queue's head when the next move takes it, unless the session changed
// hands (then its connection is not the one the read was for, and the page is
// dropped). Messages appended meanwhile come after it.
type pageAhead struct {
	c    *conn
	done chan struct{}
	page []*persistence.PersistedPacket
	err  error
}

// readAhead starts reading up to max packets from the head of c's session's
// queue. The caller has committed its last move, so the read does not see it.
func (b *Broker) readAhead(c *conn, max int) *pageAhead {
	a := &pageAhead{c: c, done: make(chan struct{})}
	b.wg.Add(1) // the store stays open until it ends (Close waits for wg)
	go func() {
		defer b.wg.Done()
		defer close(a.done)
		a.page, a.err = b.readQueue(c.sess.id, max)
	}()
	return a
}

// queuePage returns up to max packets from the head of c's session's stored
// queue: the page read ahead for c when there is one, else one read now.
func (b *Broker) queuePage(c *conn, max int) ([]*persistence.PersistedPacket, error) {
	s := c.sess
	s.mu.Lock()
	a := s.ahead
	s.ahead = nil
	s.mu.Unlock()
	if a != nil && a.c == c {
		<-a.done
		// A failed or empty read ahead is read again: the error may have been
		// passing, and messages may have been queued since.
		if a.err == nil && len(a.page) > 0 {
			return a.page[:min(len(a.page), max)], nil
		}
	}
	return b.readQueue(s.id, max)
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
