package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
)

// retained implements persistence.Retained. Messages live in a table named by a
// generation number (keyRetGen): Store writes a new table beside the live one and
// switches the generation in one small transaction, and Wipe just switches to an
// empty one, so both are atomic however many messages there are, and the old table is
// collected as garbage afterwards.
type retained Store

func (r *retained) st() *Store { return (*Store)(r) }

// storeChunk is the number of messages Store writes per transaction.
const storeChunk = 1000

func isNotFound(err error) bool { return errors.Is(err, persistence.ErrNotFound) }
func isBroken(err error) bool   { return errors.Is(err, persistence.ErrBrokenEntry) }

func readGen(tx Tx) (uint64, error) {
	v, err := tx.Get(keyRetGen)
	if err != nil {
		return 0, err
	}
	return readU64(v, "retained generation")
}

func (s *Store) validateRetained(topic string, p *persistence.PersistedPacket) error {
	if topic == "" {
		return fmt.Errorf("%s: %w: empty topic for a retained message", s.name, persistence.ErrInvalidArgument)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return fmt.Errorf("%s: retained message on %q: %w", s.name, topic, err)
	}
	return nil
}

// Put stores a copy of p as the retained message of topic.
func (r *retained) Put(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	s := r.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.validateRetained(topic, p); err != nil {
		return err
	}
	blob := persistence.EncodePacket(nil, p)
	return s.write(ctx, func(w *writer) error {
		gen, err := readGen(w.tx)
		if err != nil {
			return err
		}
		return w.putRetained(gen, topic, blob)
	})
}

// putRetained stores blob as the message of topic in table gen.
func (w *writer) putRetained(gen uint64, topic string, blob []byte) error {
	k, long := topicKey(gen, topic, w.s.cfg.MaxKeySize)
	old, err := w.tx.Get(k)
	if err != nil {
		return err
	}
	if old == nil {
		w.dRet++
		if long {
			if err := w.tx.Put(longTopicKey(gen, k), []byte(topic)); err != nil {
				return err
			}
		}
	}
	return w.tx.Put(k, blob)
}

// Get returns the retained message of topic, or persistence.ErrNotFound.
func (r *retained) Get(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	s := r.st()
	var p *persistence.PersistedPacket
	err := s.view(ctx, "get retained", func(tx Tx) error {
		gen, err := readGen(tx)
		if err != nil {
			return err
		}
		k, _ := topicKey(gen, topic, s.cfg.MaxKeySize)
		v, err := tx.Get(k)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("%s: retained message on %q: %w", s.name, topic, persistence.ErrNotFound)
		}
		if p, err = persistence.DecodePacket(v); err != nil {
			return fmt.Errorf("%s: retained message on %q: %w", s.name, topic, err)
		}
		return nil
	})
	return p, err
}

// Delete removes the retained message of topic; a no-op when there is none.
func (r *retained) Delete(ctx context.Context, topic string) error {
	s := r.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.write(ctx, func(w *writer) error {
		gen, err := readGen(w.tx)
		if err != nil {
			return err
		}
		k, long := topicKey(gen, topic, s.cfg.MaxKeySize)
		old, err := w.tx.Get(k)
		if err != nil || old == nil {
			return err
		}
		w.dRet--
		if long {
			if err := w.tx.Delete(longTopicKey(gen, k)); err != nil {
				return err
			}
		}
		return w.tx.Delete(k)
	})
}

// retainedItem is one message read by a page of a load.
type retainedItem struct {
	key   []byte // after the table prefix
	topic string
	p     *persistence.PersistedPacket
	bad   error
}

// scanPage reads up to pageSize messages of the live table whose topic starts with
// prefix and whose key (after the table prefix) is at or after from, keeping those
// keep accepts. It also stops after scanning a bounded number of keys, so a filter
// that matches few topics does not hold one transaction over the whole table. more
// reports whether keys are left; next is where to continue.
func (s *Store) scanPage(ctx context.Context, prefix string, from []byte, keep func(topic string) bool) (page []retainedItem, next []byte, more bool, err error) {
	next = from
	max := s.cfg.MaxKeySize
	err = s.view(ctx, "load retained", func(tx Tx) error {
		gen, err := readGen(tx)
		if err != nil {
			return err
		}
		kp := retainedKey(gen, scanPrefix(prefix, max))
		scanned := 0
		return tx.Iterate(kp, append(retainedPrefix(gen), from...), func(k, v []byte) (bool, error) {
			next = after(k[9:])
			scanned++
			topic := string(k[9:])
			if max > 0 && len(k) == max {
				full, err := tx.Get(longTopicKey(gen, k))
				if err != nil {
					return false, err
				}
				topic = string(full)
			}
			if keep(topic) {
				it := retainedItem{topic: topic, key: append([]byte(nil), k[9:]...)}
				if it.p, err = persistence.DecodePacket(v); err != nil {
					it.bad = fmt.Errorf("%s: retained message on %q: %w", s.name, topic, err)
				}
				page = append(page, it)
			}
			if len(page) >= pageSize || scanned >= 16*pageSize {
				more = true // stopped early: there may be keys left
				return false, nil
			}
			return true, nil
		})
	})
	return page, next, more, err
}

// deliver pages through the messages under prefix that keep accepts and calls fn
// for each with no transaction open. A page read before a write committed is read
// again from the message about to be delivered, so deleted messages are skipped and
// replaced ones delivered in their new version.
func (s *Store) deliver(ctx context.Context, prefix string, keep func(string) bool, fn persistence.RetainedLoader, broken *brokenList) error {
	from := []byte(scanPrefix(prefix, s.cfg.MaxKeySize))
	for {
		commits := s.commits.Load()
		page, next, more, err := s.scanPage(ctx, prefix, from, keep)
		if err != nil {
			return err
		}
		reread := false
		for i, it := range page {
			if i > 0 && s.commits.Load() != commits {
				from, reread = it.key, true
				break
			}
			if it.bad != nil {
				broken.add(it.bad)
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(&persistence.RetainedMessage{Topic: it.topic, Packet: it.p}); err != nil {
				return err
			}
		}
		if reread {
			continue
		}
		if !more {
			return nil
		}
		from = next
	}
}

// LoadMatching calls fn once for every retained message whose topic matches at
// least one of filters. A filter without wildcards is one lookup; a wildcard filter
// scans only the keys under its literal prefix ([persistence.FilterPrefix]). A
// topic matched by an earlier filter of the list is skipped, so none is delivered
// twice.
func (r *retained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	s := r.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%s: %w: nil RetainedLoader", s.name, persistence.ErrInvalidArgument)
	}
	var broken brokenList
	for i, f := range filters {
		earlier := filters[:i]
		keep := func(topic string) bool {
			if !persistence.MatchTopic(f, topic) {
				return false
			}
			for _, e := range earlier {
				if persistence.MatchTopic(e, topic) {
					return false
				}
			}
			return true
		}
		if f == "" {
			continue
		}
		var exact []string
		prefix := persistence.FilterPrefix(f)
		switch {
		case !strings.ContainsAny(f, "+#"):
			exact = append(exact, f)
		case strings.HasSuffix(prefix, "/") && f == prefix+"#":
			// "a/b/#" also matches "a/b", which is not under the prefix "a/b/".
			exact = append(exact, prefix[:len(prefix)-1])
		}
		for _, t := range exact {
			if t == "" || !keep(t) {
				continue
			}
			p, err := r.Get(ctx, t)
			switch {
			case err == nil:
				if err := fn(&persistence.RetainedMessage{Topic: t, Packet: p}); err != nil {
					return iterResult(err)
				}
			case isNotFound(err):
			case isBroken(err):
				broken.add(err)
			default:
				return err
			}
		}
		if strings.ContainsAny(f, "+#") {
			if err := s.deliver(ctx, prefix, keep, fn, &broken); err != nil {
				return iterResult(err)
			}
		}
	}
	return broken.err()
}

// Load calls fn for every retained message, in topic order.
func (r *retained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	s := r.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%s: %w: nil RetainedLoader", s.name, persistence.ErrInvalidArgument)
	}
	var broken brokenList
	if err := s.deliver(ctx, "", func(string) bool { return true }, fn, &broken); err != nil {
		return iterResult(err)
	}
	return broken.err()
}

// Store replaces every retained message with msgs, atomically: the new table is
// written under a generation nobody reads, storeChunk messages per transaction, and
// becomes the live one in a final transaction. A crash before that leaves the old
// table live and the new one is collected at the next open.
func (r *retained) Store(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	s := r.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	last := make(map[string]int, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%s: %w: nil retained message at index %d", s.name, persistence.ErrInvalidArgument, i)
		}
		if err := s.validateRetained(m.Topic, m.Packet); err != nil {
			return err
		}
		last[m.Topic] = i
	}
	var gen uint64
	err := s.write(ctx, func(w *writer) error {
		gen = w.nextSeq()
		return w.tx.Put(append(append([]byte(nil), keyPending...), u64(gen)...), []byte{})
	})
	if err != nil {
		return err
	}
	chunk := make([]int, 0, storeChunk)
	flush := func() error {
		idx := chunk
		err := s.write(ctx, func(w *writer) error {
			for _, i := range idx {
				m := msgs[i]
				if err := w.putRetained(gen, m.Topic, persistence.EncodePacket(nil, m.Packet)); err != nil {
					return err
				}
			}
			return nil
		})
		chunk = chunk[:0]
		return err
	}
	for i, m := range msgs {
		if last[m.Topic] != i {
			continue
		}
		chunk = append(chunk, i)
		if len(chunk) == storeChunk {
			if err := flush(); err != nil {
				return s.abandonTable(gen, err)
			}
		}
	}
	if err := flush(); err != nil {
		return s.abandonTable(gen, err)
	}
	err = s.write(ctx, func(w *writer) error {
		return w.switchRetained(gen, uint64(len(last)), true)
	})
	if err != nil {
		return s.abandonTable(gen, err)
	}
	return nil
}

// abandonTable marks a table Store did not finish as garbage and returns err.
func (s *Store) abandonTable(gen uint64, err error) error {
	_ = s.write(context.Background(), func(w *writer) error {
		if err := w.tx.Delete(append(append([]byte(nil), keyPending...), u64(gen)...)); err != nil {
			return err
		}
		return w.dropTable(gen)
	})
	return err
}

// switchRetained makes table gen, holding n messages, the live one and marks the
// old one as garbage.
func (w *writer) switchRetained(gen, n uint64, pending bool) error {
	old, err := readGen(w.tx)
	if err != nil {
		return err
	}
	v, err := w.tx.Get(keyRetained)
	if err != nil {
		return err
	}
	stored, err := readU64(v, "retained count")
	if err != nil {
		return err
	}
	cur := int64(stored) + w.dRet // with this transaction's earlier changes
	if pending {
		if err := w.tx.Delete(append(append([]byte(nil), keyPending...), u64(gen)...)); err != nil {
			return err
		}
	}
	if cur > 0 {
		if err := w.dropTable(old); err != nil {
			return err
		}
	}
	if err := w.tx.Put(keyRetGen, u64(gen)); err != nil {
		return err
	}
	w.dRet += int64(n) - cur
	return nil
}

// Count returns the number of retained messages, kept as a counter record.
func (r *retained) Count(ctx context.Context) (uint64, error) {
	return r.st().counter(ctx, keyRetained, "retained count")
}

// Wipe removes every retained message by switching to a new, empty table.
func (r *retained) Wipe(ctx context.Context) error {
	s := r.st()
	return s.write(ctx, func(w *writer) error {
		return w.switchRetained(w.nextSeq(), 0, false)
	})
}

// dropTable marks retained table gen, with its long topics, as garbage.
func (w *writer) dropTable(gen uint64) error {
	if err := w.markGarbage(retainedPrefix(gen)); err != nil {
		return err
	}
	return w.markGarbage(longTopicPrefix(gen))
}
