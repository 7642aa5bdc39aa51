package kv

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Rebuild recomputes the layer's derived data from its records (LAYOUT.md): the
// session count (one per header), each live queue's packet count, the retained
// count (the live table's keys), and the expiry index (one entry per session with
// readable deadlines, where its header says). Each disagreement found by a read is
// corrected by a write transaction that computes the truth again and writes it.
func (s *Store) Rebuild(ctx context.Context) ([]driver.Fix, error) {
	var fixes []driver.Fix
	fix := func(f func(w *writer) (*driver.Fix, error)) error {
		var got *driver.Fix
		err := s.write(ctx, func(w *writer) (err error) {
			got, err = f(w)
			return err
		})
		if got != nil {
			fixes = append(fixes, *got)
		}
		return err
	}
	var wrong []func(w *writer) (*driver.Fix, error)
	err := s.view("rebuild", func(tx Tx) error {
		for _, f := range []func(w *writer) (*driver.Fix, error){(*writer).fixSessionCount, (*writer).fixRetainedCount} {
			if got, err := f(&writer{s: s, tx: readOnly{tx}}); err != nil || got != nil {
				wrong = append(wrong, f)
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	hs, err := s.headers()
	if err != nil {
		return nil, err
	}
	// Expiry index entries that no header points at.
	err = s.scanKeys([]byte{tagExpIndex}, func(_ Tx, k, _ []byte) error {
		if stale(hs, k) {
			key := bytes.Clone(k)
			wrong = append(wrong, func(w *writer) (*driver.Fix, error) { return w.dropIndexEntry(key) })
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	for id, h := range hs {
		var checks []func(w *writer) (*driver.Fix, error)
		for i, q := range h.qid {
			if q != 0 {
				c := driver.PacketClass(i + 1)
				checks = append(checks, func(w *writer) (*driver.Fix, error) { return w.fixQueue(id, c) })
			}
		}
		checks = append(checks, func(w *writer) (*driver.Fix, error) { return w.fixExpiry(id) })
		err := s.view("rebuild", func(tx Tx) error {
			for _, f := range checks {
				got, err := f(&writer{s: s, tx: readOnly{tx}})
				if err != nil {
					return err
				}
				if got != nil {
					wrong = append(wrong, f)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, f := range wrong {
		if err := fix(f); err != nil {
			return fixes, err
		}
	}
	return fixes, nil
}

// readOnly runs a fix's computation in a read transaction: it finds whether a fix
// is needed, and the writes it would make are dropped.
type readOnly struct{ Tx }

func (readOnly) Put(k, v []byte) error { return nil }
func (readOnly) Delete(k []byte) error { return nil }

// stale reports whether expiry index key k is not the entry its session's header
// names (or names a session without a header).
func stale(hs map[string]header, k []byte) bool {
	stamp, id, err := parseExpIndexKey(k)
	if err != nil {
		return false // a broken key: BrokenForEach reports it
	}
	h, ok := hs[id]
	return !ok || h.stamp != stamp || !bytes.Equal(h.deadline[:], k[1:13])
}

// The fixes: each reads what it corrects in the transaction it writes in, and
// returns nil when nothing needs correcting.

// fixSessionCount sets the session count to the number of headers.
func (w *writer) fixSessionCount() (*driver.Fix, error) {
	var n uint64
	err := w.tx.Iterate([]byte{tagHeader}, []byte{tagHeader}, func(_, _ []byte) (bool, error) { n++; return true, nil })
	if err != nil {
		return nil, err
	}
	return w.fixCounter(keySessions, "session count", n)
}

// fixRetainedCount sets the retained count to the number of messages of the live table.
func (w *writer) fixRetainedCount() (*driver.Fix, error) {
	gen, err := readGen(w.tx)
	if err != nil {
		return nil, err
	}
	var n uint64
	p := retainedPrefix(gen)
	if err := w.tx.Iterate(p, p, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		return nil, err
	}
	return w.fixCounter(keyRetained, "retained count", n)
}

// fixCounter sets counter record key to n if it holds anything else.
func (w *writer) fixCounter(key []byte, what string, n uint64) (*driver.Fix, error) {
	v, err := w.tx.Get(key)
	if err != nil {
		return nil, err
	}
	old, err := readU64(v, what)
	if err == nil && old == n && (v != nil || n == 0) {
		return nil, nil
	}
	detail := fmt.Sprintf("held %d, the records say %d", old, n)
	if err != nil {
		detail = fmt.Sprintf("unreadable (%v), the records say %d", err, n)
	}
	return &driver.Fix{Where: what, Detail: detail}, w.tx.Put(key, u64(n))
}

// fixQueue sets the packet count of (id, class) to the number of its packets, and
// retires the queue when it holds none.
func (w *writer) fixQueue(id string, class driver.PacketClass) (*driver.Fix, error) {
	h, ok, err := readHeader(w.tx, id)
	qid := h.qid[class-1]
	if err != nil || !ok || qid == 0 {
		return nil, err
	}
	var n uint64
	p := packetPrefix(qid)
	err = w.tx.Iterate(p, p, func(k, _ []byte) (bool, error) {
		if len(k) != 17 || !bytes.Equal(k[9:], u64(math.MaxUint64)) {
			n++
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("session %q class %s count", id, class)
	if n > 0 {
		return w.fixCounter(countKey(qid), where, n)
	}
	// An empty queue is retired, as deletePackets does.
	v, err := w.tx.Get(countKey(qid))
	if err != nil {
		return nil, err
	}
	old, _ := readU64(v, where)
	if err := w.tx.Delete(countKey(qid)); err != nil {
		return nil, err
	}
	h.qid[class-1] = 0
	return &driver.Fix{Where: where, Detail: fmt.Sprintf("held %d, the queue holds no packet: retired", old)}, w.putHeader(id, &h)
}

// fixExpiry makes the expiry index entry of session id and its header agree with
// its deadlines: an entry where the header says, holding them, or none when it has
// none. Broken deadlines are left to BrokenForEach.
func (w *writer) fixExpiry(id string) (*driver.Fix, error) {
	h, ok, err := readHeader(w.tx, id)
	if err != nil || !ok {
		return nil, err
	}
	blob, err := w.tx.Get(expiryKey(id))
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("expiry index entry of session %q", id)
	if blob == nil {
		if h.stamp == 0 {
			return nil, nil
		}
		return &driver.Fix{Where: where, Detail: "the session has no deadlines: entry removed"}, w.storeExpiry(id, driver.SessionExpiry{})
	}
	e, err := driver.DecodeExpiry(blob)
	if err != nil || e.IsZero() {
		return nil, nil
	}
	if h.stamp != 0 && h.deadline == deadlineBytes(e.Next()) {
		entry, err := w.tx.Get(expIndexKey(h.deadline, h.stamp, id))
		if err != nil || bytes.Equal(entry, blob) {
			return nil, err
		}
	}
	return &driver.Fix{Where: where, Detail: "missing or not the session's deadlines: written again"}, w.storeExpiry(id, e)
}

// dropIndexEntry deletes expiry index entry k if no header points at it.
func (w *writer) dropIndexEntry(k []byte) (*driver.Fix, error) {
	stamp, id, err := parseExpIndexKey(k)
	if err != nil {
		return nil, nil
	}
	v, err := w.tx.Get(k)
	if err != nil || v == nil {
		return nil, err
	}
	h, ok, err := readHeader(w.tx, id)
	if err != nil {
		return nil, err
	}
	if ok && h.stamp == stamp && bytes.Equal(h.deadline[:], k[1:13]) {
		return nil, nil
	}
	return &driver.Fix{Where: fmt.Sprintf("expiry index entry %q", id), Detail: "points at no session's deadlines: removed"}, w.tx.Delete(k)
}

var _ driver.RepairConn = (*Store)(nil)
