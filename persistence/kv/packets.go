package kv

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// PacketGet returns packet seq of (id, class), or driver.ErrNotFound.
func (s *Store) PacketGet(_ context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	var p *driver.PersistedPacket
	err := s.view("get packet", func(tx Tx) error {
		h, ok, err := readHeader(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return s.notFoundSession(id)
		}
		qid := h.qid[class-1]
		if qid == 0 || seq == math.MaxUint64 {
			return s.notFoundPacket(id, class, seq)
		}
		v, err := tx.Get(packetKey(qid, seq))
		if err != nil {
			return err
		}
		if v == nil {
			return s.notFoundPacket(id, class, seq)
		}
		p, err = driver.DecodePacket(v)
		if err != nil {
			return fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, class, seq, err)
		}
		p.Seq = seq
		return nil
	})
	return p, err
}

// PacketCount returns the number of packets in (id, class), from the session's
// header.
func (s *Store) PacketCount(_ context.Context, id string, class driver.PacketClass) (uint64, error) {
	var n uint64
	err := s.view("packet count", func(tx Tx) error {
		h, ok, err := readHeader(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return s.notFoundSession(id)
		}
		n, err = queueLen(tx, h.qid[class-1])
		return err
	})
	return n, err
}

// packetItem is one packet of a PacketsForEach page.
type packetItem struct {
	seq uint64
	p   *driver.PersistedPacket
	bad error
}

// PacketsForEach calls fn for each packet of (id, class) in FIFO order, reading
// pageSize packets per read transaction (see pager). The deletions fn asks for are
// committed together, when the page has been delivered, or earlier when another write
// commits meanwhile (the rest of the page is then read again, so fn sees updates and
// deletions made by others or by itself). Packets appended after the call started
// are not visited, and the iteration ends when the class is cleared or the session
// deleted. A broken packet is skipped and reported (driver.ErrBrokenEntry) when the
// iteration ends.
func (s *Store) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	limit := s.seq.Load()
	var (
		qid     uint64 // the queue iterated; 0 before the first page
		first   = true
		pending []uint64 // sequence numbers to delete, read at commit count p.seen
		broken  brokenList
		p       pager[packetItem, uint64]
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		seqs, at := pending, p.seen
		pending = nil
		// The deletions were asked for: apply them even if ctx ended meanwhile.
		err := s.write(context.WithoutCancel(ctx), func(w *writer) error {
			return w.deletePackets(id, class, qid, at, seqs...)
		})
		if errors.Is(err, driver.ErrNotFound) {
			return nil // the session was deleted meanwhile
		}
		return err
	}
	p = pager[packetItem, uint64]{
		what: "iterate packets",
		read: func(tx Tx, from uint64) ([]packetItem, uint64, bool, error) {
			fromHead := first
			h, ok, err := readHeader(tx, id)
			if err != nil || (!ok && first) {
				if err == nil {
					err = s.notFoundSession(id)
				}
				return nil, 0, false, err
			}
			first = false
			if !ok {
				return nil, 0, false, nil // deleted since the iteration started
			}
			live := h.qid[class-1]
			if fromHead {
				qid = live
			}
			if live == 0 || live != qid {
				if qid != 0 {
					s.forgetQueueHead(qid)
				}
				return nil, 0, false, nil // empty, or cleared since the iteration started
			}
			prefix := packetPrefix(qid)
			startKey := prefix
			if from > 0 {
				startKey = packetKey(qid, from)
			} else if head := s.queueHead(qid); head > 0 {
				startKey = packetKey(qid, head)
			}
			page := make([]packetItem, 0, pageSize)
			err = tx.Iterate(prefix, startKey, func(k, v []byte) (bool, error) {
				seq, err := packetSeq(k)
				if err != nil {
					return false, err
				}
				if seq > limit {
					return false, nil
				}
				if fromHead && len(page) == 0 {
					// Nothing is left in front of the first packet this snapshot holds.
					s.setQueueHead(qid, seq)
				}
				it := packetItem{seq: seq}
				if it.p, err = driver.DecodePacket(v); err != nil {
					it.bad = fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, class, seq, err)
				} else {
					it.p.Seq = seq
				}
				page = append(page, it)
				return len(page) < pageSize, nil
			})
			if len(page) == 0 {
				return nil, 0, false, err
			}
			return page, page[len(page)-1].seq + 1, len(page) == pageSize, err
		},
		at: func(it packetItem) uint64 { return it.seq },
		visit: func(it packetItem) error {
			if it.bad != nil {
				broken.add(it.bad)
				return nil
			}
			del, err := fn(it.p)
			if del {
				if pending == nil {
					pending = make([]uint64, 0, pageSize)
				}
				pending = append(pending, it.seq)
			}
			return err
		},
		paged: flush,
	}
	err := p.run(s, 0)
	if ferr := flush(); ferr != nil {
		if err == nil || errors.Is(err, driver.ErrStopIteration) {
			return ferr // the failed deletions, not the callback's request to stop
		}
		return errors.Join(err, ferr)
	}
	if err != nil {
		return err
	}
	return broken.err()
}
