package mem

import (
	"context"
	"errors"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence"
)

func notFoundPacket(id string, c persistence.PacketClass, seq uint64) error {
	return fmt.Errorf("mem: session %q: %s packet %d: %w", id, c, seq, persistence.ErrNotFound)
}

// appendLocked stores c (a copy owned by the store) at the tail of class and returns
// its new sequence number. sess must be locked.
func (s *store) appendLocked(sess *session, class persistence.PacketClass, c *persistence.PersistedPacket) uint64 {
	c.Seq = s.seq.Add(1)
	sess.queues[class-1].push(c)
	return c.Seq
}

// PacketAppend stores a copy of p at the tail of (id, class) and returns its
// sequence number. p itself is not modified.
func (ss *sessions) PacketAppend(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) (uint64, error) {
	if !class.Valid() {
		return 0, invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return 0, fmt.Errorf("mem: %w", err)
	}
	c := p.Clone()
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return 0, err
	}
	seq := s.appendLocked(sess, class, c)
	s.unlockSession(sess)
	return seq, nil
}

// PacketGet returns a copy of packet seq of (id, class), or an error matching
// [persistence.ErrNotFound].
func (ss *sessions) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	if !class.Valid() {
		return nil, invalidClass(class)
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return nil, err
	}
	q := &sess.queues[class-1]
	var p *persistence.PersistedPacket
	if i := q.index(seq); i >= 0 {
		p = q.ents[i].p
	}
	s.unlockSession(sess)
	if p == nil {
		return nil, notFoundPacket(id, class, seq)
	}
	return p.Clone(), nil // stored packets are immutable: copy outside the lock
}

// PacketUpdate replaces packet p.Seq of (id, class) with a copy of p, keeping its
// position; an error matching [persistence.ErrNotFound] when there is no such packet.
func (ss *sessions) PacketUpdate(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return fmt.Errorf("mem: %w", err)
	}
	c := p.Clone()
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	q := &sess.queues[class-1]
	i := q.index(c.Seq)
	if i >= 0 {
		q.ents[i].p = c
	}
	s.unlockSession(sess)
	if i < 0 {
		return notFoundPacket(id, class, c.Seq)
	}
	return nil
}

// PacketDelete removes packet seq of (id, class); a no-op when there is none.
func (ss *sessions) PacketDelete(ctx context.Context, id string, class persistence.PacketClass, seq uint64) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	q := &sess.queues[class-1]
	if i := q.index(seq); i >= 0 {
		q.remove(i)
	}
	s.unlockSession(sess)
	return nil
}

// PacketCount returns the number of packets in (id, class).
func (ss *sessions) PacketCount(ctx context.Context, id string, class persistence.PacketClass) (uint64, error) {
	if !class.Valid() {
		return 0, invalidClass(class)
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return 0, err
	}
	n := sess.queues[class-1].live
	s.unlockSession(sess)
	return uint64(n), nil
}

// PacketsForEach calls fn with a copy of each packet of (id, class) in FIFO order.
// The store is locked for one step at a time, never while fn runs: each step applies
// the deletion fn asked for last and fetches the next packet still stored, so fn sees
// updates and deletions made meanwhile (by itself or others). Packets appended during
// the iteration are not visited. The iteration ends early, without error, when the
// session is deleted meanwhile.
func (ss *sessions) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn persistence.PacketLoader) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	if fn == nil {
		return fmt.Errorf("mem: %w: nil PacketLoader", persistence.ErrInvalidArgument)
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	// Packets appended during the iteration are not visited, so that a callback that
	// re-queues each packet at the tail cannot make the iteration endless.
	var limit uint64
	if q := &sess.queues[class-1]; len(q.ents) > 0 {
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
		q := &sess.queues[class-1]
		if pending {
			if i := q.index(last); i >= 0 {
				q.remove(i)
			}
			pending = false
		}
		if result != nil {
			s.unlockSession(sess)
			return iterResult(result)
		}
		i := q.next(last, hint)
		if i < 0 || q.ents[i].seq > limit {
			s.unlockSession(sess)
			return nil
		}
		p := q.ents[i].p
		last, hint = p.Seq, i
		s.unlockSession(sess)

		if err := ctx.Err(); err != nil {
			return err
		}
		pending, result = fn(p.Clone())
		if !pending && result != nil {
			return iterResult(result)
		}
		ok, err := s.relock(sess)
		if err != nil || !ok { // closed, or the session was deleted meanwhile
			if result != nil {
				return iterResult(result)
			}
			return err
		}
	}
}

// iterResult maps a callback's error to the iteration's result.
func iterResult(err error) error {
	if errors.Is(err, persistence.ErrStopIteration) {
		return nil
	}
	return err
}

// PacketsStore appends every packet of pp to its class, in slice order, atomically:
// every packet is validated first, and no other call sees some of them stored.
func (ss *sessions) PacketsStore(ctx context.Context, id string, pp *persistence.PersistedPackets) error {
	if pp == nil {
		return fmt.Errorf("mem: %w: nil PersistedPackets", persistence.ErrInvalidArgument)
	}
	n := 0
	for _, c := range persistence.PacketClasses {
		for _, p := range pp.Class(c) {
			if err := persistence.ValidatePacket(p); err != nil {
				return fmt.Errorf("mem: %s: %w", c, err)
			}
		}
		n += len(pp.Class(c))
	}
	copies := make([]*persistence.PersistedPacket, 0, n)
	for _, c := range persistence.PacketClasses {
		for _, p := range pp.Class(c) {
			copies = append(copies, p.Clone())
		}
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	k := 0
	for _, c := range persistence.PacketClasses {
		for range pp.Class(c) {
			s.appendLocked(sess, c, copies[k])
			k++
		}
	}
	s.unlockSession(sess)
	return nil
}

// PacketsDelete removes every packet of the given classes of session id (all four
// when none are given). The session itself stays.
func (ss *sessions) PacketsDelete(ctx context.Context, id string, classes ...persistence.PacketClass) error {
	for _, c := range classes {
		if !c.Valid() {
			return invalidClass(c)
		}
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	for _, c := range classes {
		sess.queues[c-1].reset()
	}
	s.unlockSession(sess)
	return nil
}
