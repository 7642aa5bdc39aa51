package mem

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// queue returns the FIFO of class c.
func (sess *session) queue(c driver.PacketClass) *queue { return &sess.queues[c-1] }

// PacketGet returns a copy of packet seq of (id, class).
func (s *conn) PacketGet(_ context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	sess, err := s.lockSession(id)
	if err != nil {
		return nil, err
	}
	q := sess.queue(class)
	var p *driver.PersistedPacket
	if i := q.index(seq); i >= 0 {
		p = q.ents[i].p
	}
	s.unlockSession(sess)
	if p == nil {
		return nil, notFoundPacket(id, class, seq)
	}
	return p.Clone(), nil // stored packets are never mutated: copy outside the lock
}

// PacketCount returns the number of packets in (id, class).
func (s *conn) PacketCount(_ context.Context, id string, class driver.PacketClass) (uint64, error) {
	sess, err := s.lockSession(id)
	if err != nil {
		return 0, err
	}
	n := sess.queue(class).live
	s.unlockSession(sess)
	return uint64(n), nil
}

// PacketsForEach calls fn with a copy of each packet of (id, class) in FIFO order.
// The store is locked for one step at a time, never while fn runs: each step applies
// the deletion fn asked for last and fetches the next packet still stored, so fn sees
// updates and deletions made meanwhile (by itself or others). Packets appended during
// the iteration are not visited, so that a callback that re-queues each packet at the
// tail cannot make it endless. The iteration ends early, without error, when the
// session is deleted meanwhile.
func (s *conn) PacketsForEach(_ context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	sess, err := s.lockSession(id)
	if err != nil {
		return err
	}
	var limit uint64
	if q := sess.queue(class); len(q.ents) > 0 {
		limit = q.ents[len(q.ents)-1].seq
	}
	var (
		last    uint64 // seq of the packet last handed to fn (seqs start at 1)
		hint    = -1   // its slot, unless a compaction moved it
		pending bool   // fn asked to delete packet last
		result  error  // fn's error, returned once pending is applied
	)
	for {
		// sess is locked here.
		q := sess.queue(class)
		if pending {
			if i := q.index(last); i >= 0 {
				q.remove(i)
			}
		}
		i := -1
		if result == nil {
			i = q.next(last, hint)
		}
		if i < 0 || q.ents[i].seq > limit {
			s.unlockSession(sess)
			return result
		}
		p := q.ents[i].p
		last, hint = p.Seq, i
		s.unlockSession(sess)

		pending, result = fn(p.Clone())
		if !pending && result != nil {
			return result
		}
		ok, err := s.relock(sess)
		if !ok { // closed, or the session was deleted meanwhile
			if result != nil {
				return result
			}
			return err
		}
	}
}
