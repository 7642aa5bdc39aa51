package mem

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Apply commits ops atomically. Writes to one existing session (every single call
// but Create and Delete) lock only that session, so writers to different sessions
// run in parallel; other lists lock the whole store. Either way the list is first
// checked against the store as its earlier operations would leave it, and written
// only then, so a failing list changes nothing.
func (s *conn) Apply(_ context.Context, ops []driver.Op) ([]uint64, error) {
	// Copy the packets to keep before locking, and see which lock the list needs.
	var buf [4]*driver.PersistedPacket
	copies := buf[:0]
	if len(ops) > len(buf) {
		copies = make([]*driver.PersistedPacket, 0, len(ops))
	}
	appends, one, updates := 0, true, false
	for i := range ops {
		op := &ops[i]
		var c *driver.PersistedPacket
		switch op.Kind {
		case driver.OpPacketAppend:
			appends++
			c = op.Packet.Clone()
		case driver.OpPacketUpdate:
			updates = true
			c = op.Packet.Clone()
		case driver.OpCreate, driver.OpDelete:
			one = false
		}
		one = one && op.ID == ops[0].ID
		copies = append(copies, c)
	}

	if !one {
		s.mu.Lock()
		seqs, err := s.write(ops, copies, appends, nil, true)
		s.mu.Unlock()
		return seqs, err
	}
	sess, err := s.lockSession(ops[0].ID)
	if err != nil {
		return nil, err
	}
	// On one existing session only an update of a missing packet can fail.
	seqs, err := s.write(ops, copies, appends, sess, updates)
	s.unlockSession(sess)
	return seqs, err
}

// write checks ops when check is set, then applies them, with copies[i] the copy of
// the packet of ops[i] and appends the number of appends. sess is nil when the caller
// holds mu exclusively; otherwise it is the only session of ops, locked.
func (s *conn) write(ops []driver.Op, copies []*driver.PersistedPacket, appends int, sess *session, check bool) ([]uint64, error) {
	if s.closed {
		return nil, errClosed
	}
	if check {
		if err := s.check(ops); err != nil {
			return nil, err
		}
	}
	var seqs []uint64
	if appends > 0 {
		seqs = make([]uint64, 0, appends)
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case driver.OpCreate:
			s.sessions[op.ID] = &session{id: op.ID, base: op.Base}
			continue
		case driver.OpDelete:
			s.deleteLocked(op.ID)
			continue
		}
		target := sess
		if target == nil {
			target = s.sessions[op.ID] // exists: checked above
		}
		switch op.Kind {
		case driver.OpPacketAppend:
			copies[i].Seq = s.seq.Add(1)
			target.queue(op.Class).push(copies[i])
			seqs = append(seqs, copies[i].Seq)
		case driver.OpPacketUpdate:
			q := target.queue(op.Class)
			q.ents[q.index(op.Packet.Seq)].p = copies[i] // exists: checked above
		case driver.OpPacketDelete:
			q := target.queue(op.Class)
			if j := q.index(op.Seq); j >= 0 {
				q.remove(j)
			}
		case driver.OpPacketsDelete:
			target.queue(op.Class).reset()
		case driver.OpSubscriptionStore:
			if target.subs == nil {
				target.subs = make(map[string]driver.Subscription)
			}
			target.subs[op.Subscription.Filter] = op.Subscription
		case driver.OpSubscriptionDelete:
			delete(target.subs, op.Filter)
		case driver.OpSubscriptionsDeleteAll:
			target.subs = nil
		case driver.OpStateStore:
			target.state = op.State.Clone()
		case driver.OpStateDelete:
			target.state = nil
		case driver.OpExpiryStore:
			s.setExpiryLocked(target, op.Expiry)
		case driver.OpExpiryDelete:
			s.setExpiryLocked(target, driver.SessionExpiry{})
		}
	}
	return seqs, nil
}

// deleteLocked removes session id; s.mu must be held exclusively.
func (s *conn) deleteLocked(id string) {
	sess := s.sessions[id]
	if sess == nil {
		return
	}
	delete(s.sessions, id)
	sess.dead = true
	s.setExpiryLocked(sess, driver.SessionExpiry{})
}

// pkey names one packet of a session inside check.
type pkey struct {
	class driver.PacketClass
	seq   uint64
}

// view is what check knows about one session after the operations seen so far,
// where it differs from the store.
type view struct {
	exists  bool
	fresh   bool // none of the stored packets survive (created or deleted in the list)
	cleared [4]bool
	deleted map[pkey]struct{}
}

// check returns the error the first failing operation of ops would give when applied
// in order, or nil when all of them would succeed. It reads the sessions ops write,
// which the caller has locked, and writes nothing.
func (s *conn) check(ops []driver.Op) error {
	var views map[string]*view // only sessions whose view differs from the store
	for i := range ops {
		op := &ops[i]
		v := views[op.ID]
		exists := s.sessions[op.ID] != nil
		if v != nil {
			exists = v.exists
		}
		var err error
		switch op.Kind {
		case driver.OpCreate:
			if exists {
				err = fmt.Errorf("mem: session %q: %w", op.ID, driver.ErrAlreadyExists)
			}
		case driver.OpDelete:
		default:
			if !exists {
				err = notFoundSession(op.ID)
			} else if op.Kind == driver.OpPacketUpdate {
				seq := op.Packet.Seq
				gone := v != nil && (v.fresh || v.cleared[op.Class-1])
				if !gone && v != nil {
					_, gone = v.deleted[pkey{op.Class, seq}]
				}
				if !gone && s.sessions[op.ID].queue(op.Class).index(seq) < 0 {
					gone = true
				}
				if gone {
					err = notFoundPacket(op.ID, op.Class, seq)
				}
			}
		}
		if err != nil {
			if len(ops) > 1 {
				err = fmt.Errorf("mem: operation %d: %w", i, err)
			}
			return err
		}
		if i == len(ops)-1 {
			break // no later operation needs the view
		}
		switch op.Kind {
		case driver.OpCreate, driver.OpDelete, driver.OpPacketDelete, driver.OpPacketsDelete:
		default:
			continue
		}
		if v == nil {
			if views == nil {
				views = make(map[string]*view)
			}
			v = &view{exists: exists, fresh: !exists}
			views[op.ID] = v
		}
		switch op.Kind {
		case driver.OpCreate:
			v.exists = true
		case driver.OpDelete:
			*v = view{fresh: true}
		case driver.OpPacketDelete:
			if v.deleted == nil {
				v.deleted = make(map[pkey]struct{})
			}
			v.deleted[pkey{op.Class, op.Seq}] = struct{}{}
		case driver.OpPacketsDelete:
			v.cleared[op.Class-1] = true
		}
	}
	return nil
}
