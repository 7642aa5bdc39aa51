package mem

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence"
)

// pkey names one packet of a session inside batch validation.
type pkey struct {
	class persistence.PacketClass
	seq   uint64
}

// batchView is what validation knows about one session after the operations of a
// batch seen so far, where it differs from the store.
type batchView struct {
	exists  bool
	fresh   bool // none of the stored packets survive (created or deleted in the batch)
	cleared [4]bool
	deleted map[pkey]struct{}
}

// Apply commits every operation of b atomically. With the store locked exclusively it
// first validates the whole batch against the store as the earlier operations of b
// would leave it (arguments, session existence, packets to update), and only then
// writes, so a failing batch changes nothing. It returns the sequence numbers of b's
// appends in order (nil when there are none).
func (ss *sessions) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("mem: %w: nil batch", persistence.ErrInvalidArgument)
	}
	ops := b.Ops()
	for i := range ops {
		if err := ops[i].Validate(); err != nil {
			return nil, fmt.Errorf("mem: batch operation %d: %w", i, err)
		}
	}
	// Copy the values to store before locking; Validate guarantees they are set.
	copies := make([]*persistence.PersistedPacket, len(ops))
	for i := range ops {
		switch ops[i].Kind {
		case persistence.OpPacketAppend, persistence.OpPacketUpdate:
			copies[i] = ops[i].Packet.Clone()
		}
	}

	s := ss.st()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errClosed
	}
	if err := s.checkBatch(ops); err != nil {
		return nil, err
	}
	var seqs []uint64
	if n := b.Appends(); n > 0 {
		seqs = make([]uint64, 0, n)
	}
	for i := range ops {
		op := &ops[i]
		if op.Kind == persistence.OpCreate {
			s.sessions[op.ID] = &session{id: op.ID, base: op.Base}
			continue
		}
		if op.Kind == persistence.OpDelete {
			s.deleteLocked(op.ID)
			continue
		}
		sess := s.sessions[op.ID] // exists: checked above
		switch op.Kind {
		case persistence.OpPacketAppend:
			seqs = append(seqs, s.appendLocked(sess, op.Class, copies[i]))
		case persistence.OpPacketUpdate:
			q := &sess.queues[op.Class-1]
			q.ents[q.index(op.Packet.Seq)].p = copies[i] // exists: checked above
		case persistence.OpPacketDelete:
			q := &sess.queues[op.Class-1]
			if j := q.index(op.Seq); j >= 0 {
				q.remove(j)
			}
		case persistence.OpPacketsDelete:
			sess.queues[op.Class-1].reset()
		case persistence.OpSubscriptionStore:
			sess.storeSubscription(op.Subscription)
		case persistence.OpSubscriptionDelete:
			delete(sess.subs, op.Filter)
		case persistence.OpSubscriptionsDeleteAll:
			sess.subs = nil
		case persistence.OpStateStore:
			sess.state = op.State.Clone()
		case persistence.OpStateDelete:
			sess.state = nil
		case persistence.OpExpiryStore:
			s.setExpiryLocked(sess, op.Expiry)
		case persistence.OpExpiryDelete:
			s.setExpiryLocked(sess, persistence.SessionExpiry{})
		}
	}
	return seqs, nil
}

// checkBatch returns the error the first failing operation of ops would give when
// applied in order, or nil when all of them would succeed. s.mu must be held
// exclusively. It writes nothing to the store.
func (s *store) checkBatch(ops []persistence.Op) error {
	var views map[string]*batchView // only sessions whose view differs from the store
	view := func(id string) *batchView {
		if v := views[id]; v != nil {
			return v
		}
		if views == nil {
			views = make(map[string]*batchView)
		}
		exists := s.sessions[id] != nil
		v := &batchView{exists: exists, fresh: !exists}
		views[id] = v
		return v
	}
	for i := range ops {
		op := &ops[i]
		v := views[op.ID]
		exists := s.sessions[op.ID] != nil
		if v != nil {
			exists = v.exists
		}
		switch op.Kind {
		case persistence.OpCreate:
			if exists {
				return fmt.Errorf("mem: batch operation %d: session %q: %w", i, op.ID, persistence.ErrAlreadyExists)
			}
			view(op.ID).exists = true
			continue
		case persistence.OpDelete:
			v = view(op.ID)
			*v = batchView{exists: false, fresh: true}
			continue
		}
		if !exists {
			return fmt.Errorf("mem: batch operation %d: %w", i, notFoundSession(op.ID))
		}
		switch op.Kind {
		case persistence.OpPacketUpdate:
			seq := op.Packet.Seq
			gone := v != nil && (v.fresh || v.cleared[op.Class-1])
			if !gone && v != nil {
				_, gone = v.deleted[pkey{op.Class, seq}]
			}
			if !gone {
				gone = s.sessions[op.ID].queues[op.Class-1].index(seq) < 0
			}
			if gone {
				return fmt.Errorf("mem: batch operation %d: %w", i, notFoundPacket(op.ID, op.Class, seq))
			}
		case persistence.OpPacketDelete:
			v = view(op.ID)
			if v.deleted == nil {
				v.deleted = make(map[pkey]struct{})
			}
			v.deleted[pkey{op.Class, op.Seq}] = struct{}{}
		case persistence.OpPacketsDelete:
			view(op.ID).cleared[op.Class-1] = true
		}
	}
	return nil
}
