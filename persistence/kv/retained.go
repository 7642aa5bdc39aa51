package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Retained messages live in a table named by a generation number (keyRetGen):
// RetainedReplace writes a new table beside the live one and switches the generation
// in one small transaction (to an empty table when it replaces everything with
// nothing), so it is atomic however many messages there are, and the old table is
// collected as garbage afterwards.

// storeChunk is the number of messages RetainedReplace writes per transaction.
const storeChunk = 1000

func isNotFound(err error) bool { return errors.Is(err, driver.ErrNotFound) }
func isBroken(err error) bool   { return errors.Is(err, driver.ErrBrokenEntry) }

func readGen(tx Tx) (uint64, error) {
	v, err := tx.Get(keyRetGen)
	if err != nil {
		return 0, err
	}
	return readU64(v, "retained generation")
}

// RetainedPut stores a copy of p as the retained message of topic.
func (s *Store) RetainedPut(ctx context.Context, topic string, p *driver.PersistedPacket) error {
	blob := driver.EncodePacket(nil, p)
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

// RetainedGet returns the retained message of topic, or driver.ErrNotFound.
func (s *Store) RetainedGet(_ context.Context, topic string) (*driver.PersistedPacket, error) {
	var p *driver.PersistedPacket
	err := s.view("get retained", func(tx Tx) error {
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
			return fmt.Errorf("%s: retained message on %q: %w", s.name, topic, driver.ErrNotFound)
		}
		if p, err = driver.DecodePacket(v); err != nil {
			return fmt.Errorf("%s: retained message on %q: %w", s.name, topic, err)
		}
		return nil
	})
	return p, err
}

// RetainedDelete removes the retained message of topic; a no-op when there is none.
func (s *Store) RetainedDelete(ctx context.Context, topic string) error {
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
	p     *driver.PersistedPacket
	bad   error
}

// deliver calls fn, with no transaction open, for every message of the live table
// whose topic starts with prefix and is accepted by keep (see pager). A page also
// ends after a bounded number of keys, so a filter that matches few topics does not
// hold one transaction over the whole table.
func (s *Store) deliver(prefix string, keep func(string) bool, fn driver.RetainedLoader, broken *brokenList) error {
	max := s.cfg.MaxKeySize
	p := pager[retainedItem, []byte]{
		what: "load retained",
		read: func(tx Tx, from []byte) (page []retainedItem, next []byte, more bool, err error) {
			next = from
			gen, err := readGen(tx)
			if err != nil {
				return nil, nil, false, err
			}
			kp := retainedKey(gen, scanPrefix(prefix, max))
			scanned := 0
			err = tx.Iterate(kp, append(retainedPrefix(gen), from...), func(k, v []byte) (bool, error) {
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
					if it.p, err = driver.DecodePacket(v); err != nil {
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
			return page, next, more, err
		},
		at: func(it retainedItem) []byte { return it.key },
		visit: func(it retainedItem) error {
			if it.bad != nil {
				broken.add(it.bad)
				return nil
			}
			return fn(&driver.RetainedMessage{Topic: it.topic, Packet: it.p})
		},
	}
	return p.run(s, []byte(scanPrefix(prefix, max)))
}

// RetainedLoad calls fn once for every retained message whose topic matches at least
// one of filters, or for every one, in topic order, when filters is nil. A filter
// without wildcards is one lookup; a wildcard filter scans only the keys under its
// literal prefix ([driver.FilterPrefix]). A topic matched by an earlier filter of the
// list is skipped, so none is delivered twice.
func (s *Store) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	var broken brokenList
	if filters == nil {
		if err := s.deliver("", func(string) bool { return true }, fn, &broken); err != nil {
			return err
		}
		return broken.err()
	}
	for i, f := range filters {
		earlier := filters[:i]
		keep := func(topic string) bool {
			if !driver.MatchTopic(f, topic) {
				return false
			}
			for _, e := range earlier {
				if driver.MatchTopic(e, topic) {
					return false
				}
			}
			return true
		}
		var exact []string
		prefix := driver.FilterPrefix(f)
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
			p, err := s.RetainedGet(ctx, t)
			switch {
			case err == nil:
				if err := fn(&driver.RetainedMessage{Topic: t, Packet: p}); err != nil {
					return err
				}
			case isNotFound(err):
			case isBroken(err):
				broken.add(err)
			default:
				return err
			}
		}
		if strings.ContainsAny(f, "+#") {
			if err := s.deliver(prefix, keep, fn, &broken); err != nil {
				return err
			}
		}
	}
	return broken.err()
}

// RetainedReplace replaces every retained message with msgs, atomically: the new
// table is written under a generation nobody reads, storeChunk messages per
// transaction, and becomes the live one in a final transaction. A crash before that
// leaves the old table live and the new one is collected at the next open. With no
// msgs it only switches to a new, empty table.
func (s *Store) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	if len(msgs) == 0 {
		return s.write(ctx, func(w *writer) error {
			return w.switchRetained(w.nextSeq(), 0, false)
		})
	}
	last := make(map[string]int, len(msgs))
	for i, m := range msgs {
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
				if err := w.putRetained(gen, m.Topic, driver.EncodePacket(nil, m.Packet)); err != nil {
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

// abandonTable marks a table RetainedReplace did not finish as garbage and returns err.
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

// RetainedCount returns the number of retained messages, kept as a counter record.
func (s *Store) RetainedCount(context.Context) (uint64, error) {
	return s.counter(keyRetained, "retained count")
}

// dropTable marks retained table gen, with its long topics, as garbage.
func (w *writer) dropTable(gen uint64) error {
	if err := w.markGarbage(retainedPrefix(gen)); err != nil {
		return err
	}
	return w.markGarbage(longTopicPrefix(gen))
}
