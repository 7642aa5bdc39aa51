package kv

import (
	"fmt"
	"math"
	"slices"

	"github.com/mqttstore/mqttstore/persistence"
)

// The operations every write is made of. Each runs inside a group transaction,
// reads what it needs from it (seeing the writes of the operations before it) and
// returns an error before writing anything when it cannot complete, so that a failed
// operation leaves nothing behind once the group is run again without it.

func (s *Store) notFoundSession(id string) error {
	return fmt.Errorf("%s: session %q: %w", s.name, id, persistence.ErrNotFound)
}

func (s *Store) notFoundPacket(id string, c persistence.PacketClass, seq uint64) error {
	return fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, c, seq, persistence.ErrNotFound)
}

func (s *Store) invalidClass(c persistence.PacketClass) error {
	return fmt.Errorf("%s: %w: packet class %d", s.name, persistence.ErrInvalidArgument, uint8(c))
}

// readHeader returns the header of session id; ok is false when it does not exist.
func readHeader(tx Tx, id string) (h header, ok bool, err error) {
	v, err := tx.Get(headerKey(id))
	if err != nil || v == nil {
		return h, false, err
	}
	h, err = decodeHeader(v)
	if err != nil {
		return h, false, fmt.Errorf("header of session %q: %w", id, err)
	}
	return h, true, nil
}

// header returns the header of an existing session, or ErrNotFound.
func (w *writer) header(id string) (header, error) {
	h, ok, err := readHeader(w.tx, id)
	if err == nil && !ok {
		err = w.s.notFoundSession(id)
	}
	return h, err
}

func (w *writer) putHeader(id string, h *header) error {
	return w.tx.Put(headerKey(id), h.encode())
}

func (w *writer) create(id string, base persistence.SessionBase) error {
	_, ok, err := readHeader(w.tx, id)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%s: session %q: %w", w.s.name, id, persistence.ErrAlreadyExists)
	}
	if err := w.tx.Put(sessionKey(id), persistence.EncodeSessionBase(nil, base)); err != nil {
		return err
	}
	w.dSess++
	return w.putHeader(id, &header{})
}

// deleteSession removes session id and everything it owns. Its queues are only
// marked as garbage, so that deleting a session with a large backlog is one small
// transaction; subscriptions, state and expiry are deleted in place.
func (w *writer) deleteSession(id string) error {
	h, ok, err := readHeader(w.tx, id)
	if err != nil || !ok {
		return err
	}
	for _, qid := range h.qid {
		if qid != 0 {
			if err := w.markGarbage(packetPrefix(qid)); err != nil {
				return err
			}
		}
	}
	if err := w.deleteSubs(id); err != nil {
		return err
	}
	if h.stamp != 0 {
		if err := w.tx.Delete(expIndexKey(h.deadline, h.stamp, id)); err != nil {
			return err
		}
	}
	for _, k := range [][]byte{expiryKey(id), stateKey(id), sessionKey(id), headerKey(id)} {
		if err := w.tx.Delete(k); err != nil {
			return err
		}
	}
	w.dSess--
	return nil
}

func (w *writer) deleteSubs(id string) error {
	prefix := subPrefix(id)
	var keys [][]byte
	err := w.tx.Iterate(prefix, prefix, func(k, _ []byte) (bool, error) {
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// queueLen reads the packet count of queue qid (0 for no queue).
func queueLen(tx Tx, qid uint64) (uint64, error) {
	if qid == 0 {
		return 0, nil
	}
	v, err := tx.Get(countKey(qid))
	if err != nil {
		return 0, err
	}
	return readU64(v, "packet count")
}

// appendBlobs stores packet blobs at the tail of (id, class) and returns their
// sequence numbers. The header is written only when the class gets a new queue.
func (w *writer) appendBlobs(id string, h *header, class persistence.PacketClass, blobs [][]byte) ([]uint64, error) {
	qid := h.qid[class-1]
	if qid == 0 {
		qid = w.nextSeq()
		h.qid[class-1] = qid
		if err := w.putHeader(id, h); err != nil {
			return nil, err
		}
	}
	n, err := queueLen(w.tx, qid)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(blobs))
	for i, b := range blobs {
		seqs[i] = w.nextSeq()
		// Engines keep b until the transaction ends; it is never modified, so a rerun
		// of this operation may hand it over again.
		if err := w.tx.Put(packetKey(qid, seqs[i]), b); err != nil {
			return nil, err
		}
	}
	return seqs, w.tx.Put(countKey(qid), u64(n+uint64(len(blobs))))
}

func (w *writer) append(id string, class persistence.PacketClass, blobs ...[]byte) ([]uint64, error) {
	h, err := w.header(id)
	if err != nil {
		return nil, err
	}
	return w.appendBlobs(id, &h, class, blobs)
}

func (w *writer) updatePacket(id string, class persistence.PacketClass, p *persistence.PersistedPacket) error {
	h, err := w.header(id)
	if err != nil {
		return err
	}
	qid := h.qid[class-1]
	if qid == 0 {
		return w.s.notFoundPacket(id, class, p.Seq)
	}
	k := packetKey(qid, p.Seq)
	v, err := w.tx.Get(k)
	if err != nil {
		return err
	}
	if v == nil || p.Seq == math.MaxUint64 {
		return w.s.notFoundPacket(id, class, p.Seq)
	}
	return w.tx.Put(k, persistence.EncodePacket(nil, p))
}

// deletePackets removes the given packets of (id, class). When qid is not 0 they
// are deleted only if the class still has that queue (an iteration's deletions must
// not reach a queue created after the one it iterated was cleared). seen, when not
// 0, is the commit count at which a read transaction saw every one of seqs stored:
// if nothing changed since, they are deleted without being looked up again.
func (w *writer) deletePackets(id string, class persistence.PacketClass, qid, seen uint64, seqs ...uint64) error {
	h, err := w.header(id)
	if err != nil {
		return err
	}
	live := h.qid[class-1]
	if live == 0 || (qid != 0 && live != qid) {
		return nil
	}
	present := seqs
	if seen == 0 || !w.unchangedSince(seen) {
		if present, err = w.presentPackets(live, seqs); err != nil || len(present) == 0 {
			return err
		}
	}
	n, err := queueLen(w.tx, live)
	if err != nil {
		return err
	}
	for _, seq := range present {
		if err := w.tx.Delete(packetKey(live, seq)); err != nil {
			return err
		}
	}
	n -= min(n, uint64(len(present)))
	if n > 0 {
		return w.tx.Put(countKey(live), u64(n))
	}
	// Retire the drained queue: the next append starts a new one, so iterations never
	// seek across the delete markers (tombstones) an LSM engine keeps for the old one
	// until compaction.
	if err := w.tx.Delete(countKey(live)); err != nil {
		return err
	}
	h.qid[class-1] = 0
	return w.putHeader(id, &h)
}

// presentPackets returns the distinct seqs of queue qid that are stored. A few are
// looked up one by one; many (an iteration's page of acknowledgements) are found by
// one ordered scan over their range, which costs one seek instead of one per key.
func (w *writer) presentPackets(qid uint64, seqs []uint64) ([]uint64, error) {
	if len(seqs) <= 4 {
		var present []uint64
		for _, seq := range seqs {
			if seq == math.MaxUint64 || slices.Contains(present, seq) {
				continue
			}
			v, err := w.tx.Get(packetKey(qid, seq))
			if err != nil {
				return nil, err
			}
			if v != nil {
				present = append(present, seq)
			}
		}
		return present, nil
	}
	want := slices.DeleteFunc(slices.Clone(seqs), func(s uint64) bool { return s == math.MaxUint64 })
	if len(want) == 0 {
		return nil, nil
	}
	slices.Sort(want)
	want = slices.Compact(want)
	present := make([]uint64, 0, len(want))
	i := 0
	prefix := packetPrefix(qid)
	err := w.tx.Iterate(prefix, packetKey(qid, want[0]), func(k, _ []byte) (bool, error) {
		seq, err := packetSeq(k)
		if err != nil {
			return false, err
		}
		for i < len(want) && want[i] < seq {
			i++
		}
		if i == len(want) {
			return false, nil
		}
		if want[i] == seq {
			present = append(present, seq)
			i++
		}
		return i < len(want), nil
	})
	return present, err
}

// clearClasses empties the given classes of id by retiring their queues: the
// packets become garbage and the next append starts a new queue.
func (w *writer) clearClasses(id string, classes ...persistence.PacketClass) error {
	h, err := w.header(id)
	if err != nil {
		return err
	}
	changed := false
	for _, c := range classes {
		if h.qid[c-1] == 0 {
			continue
		}
		if err := w.markGarbage(packetPrefix(h.qid[c-1])); err != nil {
			return err
		}
		h.qid[c-1] = 0
		changed = true
	}
	if !changed {
		return nil
	}
	return w.putHeader(id, &h)
}

func (w *writer) storeSubs(id string, subs ...persistence.Subscription) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	for _, sub := range subs {
		if err := w.tx.Put(subKey(id, sub.Filter), persistence.EncodeSubscription(nil, sub)); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) deleteSubFilters(id string, filters ...string) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	for _, f := range filters {
		if err := w.tx.Delete(subKey(id, f)); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) deleteAllSubs(id string) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.deleteSubs(id)
}

func (w *writer) storeState(id string, st *persistence.SessionState) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.tx.Put(stateKey(id), persistence.EncodeState(nil, st))
}

func (w *writer) deleteState(id string) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.tx.Delete(stateKey(id))
}

// storeExpiry sets (or, for a zero e, removes) the deadlines of id, moving its
// expiry index entry. Every store takes a fresh stamp, so an ExpiredForEach in
// progress can tell entries written after it started.
func (w *writer) storeExpiry(id string, e persistence.SessionExpiry) error {
	h, err := w.header(id)
	if err != nil {
		return err
	}
	if h.stamp == 0 && e.IsZero() {
		return nil
	}
	if h.stamp != 0 {
		if err := w.tx.Delete(expIndexKey(h.deadline, h.stamp, id)); err != nil {
			return err
		}
	}
	if e.IsZero() {
		h.stamp, h.deadline = 0, [12]byte{}
		if err := w.tx.Delete(expiryKey(id)); err != nil {
			return err
		}
		return w.putHeader(id, &h)
	}
	blob := persistence.EncodeExpiry(nil, e)
	h.stamp, h.deadline = w.nextSeq(), deadlineBytes(e.Next())
	if err := w.tx.Put(expIndexKey(h.deadline, h.stamp, id), blob); err != nil {
		return err
	}
	if err := w.tx.Put(expiryKey(id), append([]byte(nil), blob...)); err != nil {
		return err
	}
	return w.putHeader(id, &h)
}

// apply runs one batch operation (already validated).
func (w *writer) apply(op *persistence.Op, seqs []uint64) ([]uint64, error) {
	switch op.Kind {
	case persistence.OpCreate:
		return seqs, w.create(op.ID, op.Base)
	case persistence.OpDelete:
		return seqs, w.deleteSession(op.ID)
	case persistence.OpPacketAppend:
		s, err := w.append(op.ID, op.Class, persistence.EncodePacket(nil, op.Packet))
		if err != nil {
			return seqs, err
		}
		return append(seqs, s[0]), nil
	case persistence.OpPacketUpdate:
		return seqs, w.updatePacket(op.ID, op.Class, op.Packet)
	case persistence.OpPacketDelete:
		return seqs, w.deletePackets(op.ID, op.Class, 0, 0, op.Seq)
	case persistence.OpPacketsDelete:
		return seqs, w.clearClasses(op.ID, op.Class)
	case persistence.OpSubscriptionStore:
		return seqs, w.storeSubs(op.ID, op.Subscription)
	case persistence.OpSubscriptionDelete:
		return seqs, w.deleteSubFilters(op.ID, op.Filter)
	case persistence.OpSubscriptionsDeleteAll:
		return seqs, w.deleteAllSubs(op.ID)
	case persistence.OpStateStore:
		return seqs, w.storeState(op.ID, op.State)
	case persistence.OpStateDelete:
		return seqs, w.deleteState(op.ID)
	case persistence.OpExpiryStore:
		return seqs, w.storeExpiry(op.ID, op.Expiry)
	case persistence.OpExpiryDelete:
		return seqs, w.storeExpiry(op.ID, persistence.SessionExpiry{})
	}
	return seqs, fmt.Errorf("%s: %w: unknown batch operation %d", w.s.name, persistence.ErrInvalidArgument, uint8(op.Kind))
}
