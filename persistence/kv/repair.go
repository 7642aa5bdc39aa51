package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Repair (driver.RepairConn): BrokenForEach and Rebuild read the keyspace in pages of
// repairPage keys per read transaction; every correction is then made in a write
// transaction of its own that looks again at what it corrects, so a store changed
// between the two is not corrupted by a stale reading (see LAYOUT.md for the keys).

// repairPage is the number of keys one read transaction of a repair scan visits.
const repairPage = 1024

// scanKeys calls check for every key under prefix, repairPage keys per read
// transaction; check may read other keys of the transaction. After each page, emit
// runs with no transaction open.
func (s *Store) scanKeys(prefix []byte, check func(tx Tx, k, v []byte) error, emit func() error) error {
	start := prefix
	for {
		n := 0
		var last []byte
		err := s.view("repair scan", func(tx Tx) error {
			return tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
				n++
				last = append(last[:0], k...)
				return n < repairPage, check(tx, k, v)
			})
		})
		if err != nil {
			return err
		}
		if emit != nil {
			if err := emit(); err != nil {
				return err
			}
		}
		if n < repairPage {
			return nil
		}
		start = after(last)
	}
}

// queueOwner names the session and class a live queue belongs to.
type queueOwner struct {
	id    string
	class driver.PacketClass
}

// headers reads every decodable session header; broken ones are left out (no
// repair can tell which queues they held).
func (s *Store) headers() (map[string]header, error) {
	out := map[string]header{}
	err := s.scanKeys([]byte{tagHeader}, func(_ Tx, k, v []byte) error {
		if h, err := decodeHeader(v); err == nil {
			out[string(k[1:])] = h
		}
		return nil
	}, nil)
	return out, err
}

// BrokenForEach visits every record that does not decode: sessions, states,
// expiries, subscriptions, expiry index entries, the packets of live queues and the
// retained messages of the live table, in that order.
func (s *Store) BrokenForEach(_ context.Context, fn func(r *driver.BrokenRecord) error) error {
	var found []*driver.BrokenRecord
	emit := func() error {
		page := found
		found = nil
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	broken := func(kind driver.RecordKind, id string, k, v []byte, err error) *driver.BrokenRecord {
		r := &driver.BrokenRecord{Kind: kind, ID: id, Key: bytes.Clone(k), Raw: bytes.Clone(v),
			Err: fmt.Errorf("%s: %s of session %q: %w", s.name, kind, id, err)}
		switch kind { // as the iterations word it
		case driver.RecordSession:
			r.Err = fmt.Errorf("%s: session %q: %w", s.name, id, err)
		case driver.RecordExpiryIndex:
			r.Err = fmt.Errorf("%s: expiry index entry of session %q: %w", s.name, id, err)
		}
		found = append(found, r)
		return r
	}
	byID := func(kind driver.RecordKind, decode func([]byte) error) func(Tx, []byte, []byte) error {
		return func(_ Tx, k, v []byte) error {
			if err := decode(v); err != nil {
				broken(kind, string(k[1:]), k, v, err)
			}
			return nil
		}
	}
	scans := []struct {
		tag   byte
		check func(tx Tx, k, v []byte) error
	}{
		{tagSession, func(_ Tx, k, v []byte) error {
			id, rest, err := parseLenID(k)
			if err == nil && len(rest) != 0 {
				err = fmt.Errorf("%w: session key with %d trailing bytes", driver.ErrBrokenEntry, len(rest))
			}
			if err == nil {
				_, err = driver.DecodeSessionBase(v)
			}
			if err != nil {
				broken(driver.RecordSession, id, k, v, err)
			}
			return nil
		}},
		{tagState, byID(driver.RecordState, func(v []byte) error { _, err := driver.DecodeState(v); return err })},
		{tagExpiry, byID(driver.RecordExpiry, func(v []byte) error { _, err := driver.DecodeExpiry(v); return err })},
		{tagSub, func(_ Tx, k, v []byte) error {
			id, filter, err := parseLenID(k)
			if err == nil {
				_, err = driver.DecodeSubscription(v)
			}
			if err != nil {
				r := broken(driver.RecordSubscription, id, k, v, err)
				r.Name = string(filter)
				r.Err = fmt.Errorf("%s: subscription %q of session %q: %w", s.name, filter, id, err)
			}
			return nil
		}},
		{tagExpIndex, func(_ Tx, k, v []byte) error {
			_, id, err := parseExpIndexKey(k)
			if err == nil {
				_, err = driver.DecodeExpiry(v)
			}
			if err != nil {
				broken(driver.RecordExpiryIndex, id, k, v, err)
			}
			return nil
		}},
	}
	for _, sc := range scans {
		if err := s.scanKeys([]byte{sc.tag}, sc.check, emit); err != nil {
			return err
		}
	}
	if err := s.brokenPackets(broken, emit); err != nil {
		return err
	}
	return s.brokenRetained(func(topic string, k, v []byte, err error) {
		r := broken(driver.RecordRetained, "", k, v, err)
		r.Name, r.Err = topic, fmt.Errorf("%s: retained message on %q: %w", s.name, topic, err)
	}, emit)
}

// brokenPackets reports the packets of live queues that do not decode.
func (s *Store) brokenPackets(broken func(driver.RecordKind, string, []byte, []byte, error) *driver.BrokenRecord, emit func() error) error {
	hs, err := s.headers()
	if err != nil {
		return err
	}
	owners := map[uint64]queueOwner{}
	for id, h := range hs {
		for i, q := range h.qid {
			if q != 0 {
				owners[q] = queueOwner{id, driver.PacketClass(i + 1)}
			}
		}
	}
	return s.scanKeys([]byte{tagPacket}, func(_ Tx, k, v []byte) error {
		if len(k) < 9 {
			return nil
		}
		o, ok := owners[binary.BigEndian.Uint64(k[1:9])]
		if !ok {
			return nil // garbage awaiting collection
		}
		seq, err := packetSeq(k)
		if err == nil && seq == math.MaxUint64 {
			return nil // the queue's counter: derived data, Rebuild's business
		}
		if err == nil {
			_, err = driver.DecodePacket(v)
		}
		if err != nil {
			r := broken(driver.RecordPacket, o.id, k, v, err)
			r.Class, r.Seq = o.class, seq
			r.Err = fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, o.id, o.class, seq, err)
		}
		return nil
	}, emit)
}

// brokenRetained reports the messages of the live retained table that do not decode.
func (s *Store) brokenRetained(broken func(topic string, k, v []byte, err error), emit func() error) error {
	var gen uint64
	err := s.view("retained generation", func(tx Tx) (err error) {
		gen, err = readGen(tx)
		return err
	})
	if err != nil {
		return err
	}
	max := s.cfg.MaxKeySize
	return s.scanKeys(retainedPrefix(gen), func(tx Tx, k, v []byte) error {
		topic := string(k[9:])
		if max > 0 && len(k) == max {
			full, err := tx.Get(longTopicKey(gen, k))
			if err != nil {
				return err
			}
			topic = string(full)
		}
		if _, err := driver.DecodePacket(v); err != nil {
			broken(topic, k, v, err)
		}
		return nil
	}, emit)
}

// BrokenDelete removes the record r names if it still holds r.Raw (see
// driver.RepairConn), through the same writes the API's deletes use, so that
// counters and the expiry index stay consistent.
func (s *Store) BrokenDelete(ctx context.Context, r *driver.BrokenRecord) error {
	return s.write(ctx, func(w *writer) error {
		v, err := w.tx.Get(r.Key)
		if err != nil {
			return err
		}
		if v == nil || !bytes.Equal(v, r.Raw) {
			return fmt.Errorf("%s: broken %s at key %x: %w (removed or rewritten since it was read)", s.name, r.Kind, r.Key, driver.ErrNotFound)
		}
		switch r.Kind {
		case driver.RecordSession:
			if bytes.Equal(r.Key, sessionKey(r.ID)) {
				if err := w.deleteSession(r.ID); err != nil {
					return err
				}
			}
		case driver.RecordExpiry:
			if _, ok, err := readHeader(w.tx, r.ID); err != nil {
				return err
			} else if ok && bytes.Equal(r.Key, expiryKey(r.ID)) {
				return w.storeExpiry(r.ID, driver.SessionExpiry{})
			}
		case driver.RecordPacket:
			h, ok, err := readHeader(w.tx, r.ID)
			if err != nil {
				return err
			}
			if len(r.Key) == 17 && r.Class.Valid() && ok && h.qid[r.Class-1] == binary.BigEndian.Uint64(r.Key[1:9]) {
				return w.deletePackets(r.ID, r.Class, h.qid[r.Class-1], 0, r.Seq)
			}
		case driver.RecordRetained:
			gen, err := readGen(w.tx)
			if err != nil {
				return err
			}
			if bytes.HasPrefix(r.Key, retainedPrefix(gen)) {
				w.dRet--
				if max := s.cfg.MaxKeySize; max > 0 && len(r.Key) == max {
					if err := w.tx.Delete(longTopicKey(gen, r.Key)); err != nil {
						return err
					}
				}
			}
		}
		return w.tx.Delete(r.Key)
	})
}
