package kv

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// The operations every write is made of. Each runs inside a group transaction,
// reads what it needs from it (seeing the writes of the operations before it) and
// returns an error before writing anything when it cannot complete, so that a failed
// operation leaves nothing behind once the group is run again without it.

func (s *Store) notFoundSession(id string) error {
	return fmt.Errorf("%s: session %q: %w", s.name, id, driver.ErrNotFound)
}

func (s *Store) notFoundPacket(id string, c driver.PacketClass, seq uint64) error {
	return fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, c, seq, driver.ErrNotFound)
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

func (w *writer) create(id string, base driver.SessionBase) error {
	_, ok, err := readHeader(w.tx, id)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%s: session %q: %w", w.s.name, id, driver.ErrAlreadyExists)
	}
	if err := w.tx.Put(sessionKey(id), driver.EncodeSessionBase(nil, base)); err != nil {
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

// append stores packet blobs at the tail of (id, class) and returns seqs extended
// by their sequence numbers. The header is written only when the class gets a new
// queue.
func (w *writer) append(id string, class driver.PacketClass, blobs [][]byte, seqs []uint64) ([]uint64, error) {
	h, err := w.header(id)
	if err != nil {
		return seqs, err
	}
	qid := h.qid[class-1]
	if qid == 0 {
		qid = w.nextSeq()
		h.qid[class-1] = qid
		if err := w.putHeader(id, &h); err != nil {
			return seqs, err
		}
	}
	n, err := queueLen(w.tx, qid)
	if err != nil {
		return seqs, err
	}
	for _, b := range blobs {
		seq := w.nextSeq()
		// Engines keep b until the transaction ends; it is never modified, so a rerun
		// of this operation may hand it over again.
		if err := w.tx.Put(packetKey(qid, seq), b); err != nil {
			return seqs, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, w.tx.Put(countKey(qid), u64(n+uint64(len(blobs))))
}

// updatePacket replaces packet seq of (id, class) with blob.
func (w *writer) updatePacket(id string, class driver.PacketClass, seq uint64, blob []byte) error {
	h, err := w.header(id)
	if err != nil {
		return err
	}
	qid := h.qid[class-1]
	if qid == 0 || seq == math.MaxUint64 {
		return w.s.notFoundPacket(id, class, seq)
	}
	k := packetKey(qid, seq)
	v, err := w.tx.Get(k)
	if err != nil {
		return err
	}
	if v == nil {
		return w.s.notFoundPacket(id, class, seq)
	}
	return w.tx.Put(k, blob)
}

// deletePackets removes the given packets of (id, class). When qid is not 0 they
// are deleted only if the class still has that queue (an iteration's deletions must
// not reach a queue created after the one it iterated was cleared). seen, when not
// 0, is the commit count at which a read transaction saw every one of seqs stored:
// if nothing changed since, they are deleted without being looked up again.
func (w *writer) deletePackets(id string, class driver.PacketClass, qid, seen uint64, seqs ...uint64) error {
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

// clearClass empties class c of id by retiring its queue: the packets become
// garbage and the next append starts a new queue.
func (w *writer) clearClass(id string, c driver.PacketClass) error {
	h, err := w.header(id)
	if err != nil || h.qid[c-1] == 0 {
		return err
	}
	if err := w.markGarbage(packetPrefix(h.qid[c-1])); err != nil {
		return err
	}
	h.qid[c-1] = 0
	return w.putHeader(id, &h)
}

// storeSubs stores the subscriptions of ops, all OpSubscriptionStore of session id.
func (w *writer) storeSubs(id string, ops []driver.Op) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	for i := range ops {
		sub := &ops[i].Subscription
		if err := w.tx.Put(subKey(id, sub.Filter), driver.EncodeSubscription(nil, *sub)); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) deleteSubFilter(id string, filter string) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.tx.Delete(subKey(id, filter))
}

func (w *writer) deleteAllSubs(id string) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.deleteSubs(id)
}

func (w *writer) storeState(id string, blob []byte) error {
	if _, err := w.header(id); err != nil {
		return err
	}
	return w.tx.Put(stateKey(id), blob)
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
func (w *writer) storeExpiry(id string, e driver.SessionExpiry) error {
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
	blob := driver.EncodeExpiry(nil, e)
	h.stamp, h.deadline = w.nextSeq(), deadlineBytes(e.Next())
	if err := w.tx.Put(expIndexKey(h.deadline, h.stamp, id), blob); err != nil {
		return err
	}
	if err := w.tx.Put(expiryKey(id), append([]byte(nil), blob...)); err != nil {
		return err
	}
	return w.putHeader(id, &h)
}

// apply runs ops[0] and the operations after it that it can run together (the
// appends to one queue, the subscriptions of one session, as PacketsStore and
// SubscriptionsStore send them), and returns how many it ran, with seqs extended by
// the sequence numbers of the appends. blobs holds the encoded packet or state of
// each operation that carries one.
func (w *writer) apply(ops []driver.Op, blobs [][]byte, seqs []uint64) (int, []uint64, error) {
	op := &ops[0]
	switch op.Kind {
	case driver.OpCreate:
		return 1, seqs, w.create(op.ID, op.Base)
	case driver.OpDelete:
		return 1, seqs, w.deleteSession(op.ID)
	case driver.OpPacketAppend:
		n := run(ops, func(o *driver.Op) bool { return o.Class == op.Class })
		seqs, err := w.append(op.ID, op.Class, blobs[:n], seqs)
		return n, seqs, err
	case driver.OpPacketUpdate:
		return 1, seqs, w.updatePacket(op.ID, op.Class, op.Packet.Seq, blobs[0])
	case driver.OpPacketDelete:
		return 1, seqs, w.deletePackets(op.ID, op.Class, 0, 0, op.Seq)
	case driver.OpPacketsDelete:
		return 1, seqs, w.clearClass(op.ID, op.Class)
	case driver.OpSubscriptionStore:
		n := run(ops, nil)
		return n, seqs, w.storeSubs(op.ID, ops[:n])
	case driver.OpSubscriptionDelete:
		return 1, seqs, w.deleteSubFilter(op.ID, op.Filter)
	case driver.OpSubscriptionsDeleteAll:
		return 1, seqs, w.deleteAllSubs(op.ID)
	case driver.OpStateStore:
		return 1, seqs, w.storeState(op.ID, blobs[0])
	case driver.OpStateDelete:
		return 1, seqs, w.deleteState(op.ID)
	case driver.OpExpiryStore:
		return 1, seqs, w.storeExpiry(op.ID, op.Expiry)
	case driver.OpExpiryDelete:
		return 1, seqs, w.storeExpiry(op.ID, driver.SessionExpiry{})
	}
	return 1, seqs, fmt.Errorf("%s: %w: unknown operation %d", w.s.name, driver.ErrInvalidArgument, uint8(op.Kind))
}

// run returns the length of the run of operations at the start of ops of the kind
// and session of ops[0] that also satisfy same (nil: all do).
func run(ops []driver.Op, same func(o *driver.Op) bool) int {
	n := 1
	for n < len(ops) && ops[n].Kind == ops[0].Kind && ops[n].ID == ops[0].ID && (same == nil || same(&ops[n])) {
		n++
	}
	return n
}

// encodeOps encodes the packet or state of every operation that carries one, before
// the operations reach the committer: the encoding copies them, so the caller's
// values are not read again, and it runs on the caller's goroutine, not the
// committer's.
func encodeOps(ops []driver.Op) (blobs [][]byte, appends int) {
	blobs = make([][]byte, len(ops))
	for i := range ops {
		switch op := &ops[i]; op.Kind {
		case driver.OpPacketAppend:
			appends++
			blobs[i] = driver.EncodePacket(nil, op.Packet)
		case driver.OpPacketUpdate:
			blobs[i] = driver.EncodePacket(nil, op.Packet)
		case driver.OpStateStore:
			blobs[i] = driver.EncodeState(nil, op.State)
		}
	}
	return blobs, appends
}

// Apply commits ops atomically, in one write transaction shared with concurrent
// writers. An operation that fails rolls back the whole list, and the error says
// which one it was when there are several.
func (s *Store) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	blobs, appends := encodeOps(ops)
	var out []uint64
	err := s.write(ctx, func(w *writer) error {
		var seqs []uint64
		if appends > 0 {
			seqs = make([]uint64, 0, appends)
		}
		for i := 0; i < len(ops); {
			n, more, err := w.apply(ops[i:], blobs[i:], seqs)
			if err != nil {
				if len(ops) > 1 {
					err = fmt.Errorf("%s: operation %d of %d: %w", s.name, i+1, len(ops), err)
				}
				return err
			}
			seqs = more
			i += n
		}
		out = seqs
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
