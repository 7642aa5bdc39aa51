package kv

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/mqttstore/mqttstore/persistence"
)

// PacketAppend stores a copy of p at the tail of (id, class) and returns its
// sequence number.
func (ss *sessions) PacketAppend(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) (uint64, error) {
	s := ss.st()
	if !class.Valid() {
		return 0, s.invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return 0, fmt.Errorf("%s: %w", s.name, err)
	}
	// Encoding copies p, so the caller may reuse it once the call returns.
	blob := persistence.EncodePacket(nil, p)
	var seq uint64
	err := s.write(ctx, func(w *writer) error {
		seqs, err := w.append(id, class, blob)
		if err == nil {
			seq = seqs[0]
		}
		return err
	})
	return seq, err
}

// PacketGet returns packet seq of (id, class), or persistence.ErrNotFound.
func (ss *sessions) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	s := ss.st()
	if !class.Valid() {
		return nil, s.invalidClass(class)
	}
	var p *persistence.PersistedPacket
	err := s.view(ctx, "get packet", func(tx Tx) error {
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
		p, err = persistence.DecodePacket(v)
		if err != nil {
			return fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, class, seq, err)
		}
		p.Seq = seq
		return nil
	})
	return p, err
}

// PacketUpdate replaces packet p.Seq of (id, class) in place.
func (ss *sessions) PacketUpdate(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) error {
	s := ss.st()
	if !class.Valid() {
		return s.invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	c := p.Clone()
	return s.write(ctx, func(w *writer) error { return w.updatePacket(id, class, c) })
}

// PacketDelete removes packet seq of (id, class); a no-op when there is none.
func (ss *sessions) PacketDelete(ctx context.Context, id string, class persistence.PacketClass, seq uint64) error {
	s := ss.st()
	if !class.Valid() {
		return s.invalidClass(class)
	}
	return s.write(ctx, func(w *writer) error { return w.deletePackets(id, class, 0, 0, seq) })
}

// PacketCount returns the number of packets in (id, class), from the session's
// header.
func (ss *sessions) PacketCount(ctx context.Context, id string, class persistence.PacketClass) (uint64, error) {
	s := ss.st()
	if !class.Valid() {
		return 0, s.invalidClass(class)
	}
	var n uint64
	err := s.view(ctx, "packet count", func(tx Tx) error {
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

// PacketsForEach calls fn for each packet of (id, class) in FIFO order. It reads
// pageSize packets per read transaction and runs fn with no transaction open. The
// deletions fn asks for are committed together, when the page has been delivered, or
// earlier when another write commits meanwhile (the rest of the page is then read
// again, so fn sees updates and deletions made by others or by itself). Packets
// appended after the call started are not visited, and the iteration ends when the
// class is cleared or the session deleted. A broken packet is skipped and reported
// (persistence.ErrBrokenEntry) when the iteration ends.
func (ss *sessions) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn persistence.PacketLoader) error {
	s := ss.st()
	if !class.Valid() {
		return s.invalidClass(class)
	}
	if fn == nil {
		return fmt.Errorf("%s: %w: nil PacketLoader", s.name, persistence.ErrInvalidArgument)
	}
	type item struct {
		seq uint64
		p   *persistence.PersistedPacket
		bad error
	}
	limit := s.seq.Load()
	var (
		qid     uint64
		next    uint64 // first sequence number of the next page
		pending []uint64
		seen    uint64 // commit count when the page holding pending was read
		broken  brokenList
		first   = true
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		seqs, at := pending, seen
		pending = nil
		// The deletions were asked for: apply them even if ctx ended meanwhile.
		err := s.write(context.WithoutCancel(ctx), func(w *writer) error {
			return w.deletePackets(id, class, qid, at, seqs...)
		})
		if errors.Is(err, persistence.ErrNotFound) {
			return nil // the session was deleted meanwhile
		}
		return err
	}
	page := make([]item, 0, pageSize)
	for {
		commits := s.commits.Load()
		seen = commits
		gone := false
		err := s.view(ctx, "iterate packets", func(tx Tx) error {
			page = page[:0]
			h, ok, err := readHeader(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				if first {
					return s.notFoundSession(id)
				}
				gone = true
				return nil
			}
			live := h.qid[class-1]
			fromHead := first
			if first {
				qid = live
			}
			if live == 0 || live != qid {
				if qid != 0 {
					s.forgetQueueHead(qid)
				}
				gone = true // empty, or cleared since the iteration started
				return nil
			}
			prefix := packetPrefix(qid)
			startKey := prefix
			if next > 0 {
				startKey = packetKey(qid, next)
			} else if head := s.queueHead(qid); head > 0 {
				startKey = packetKey(qid, head)
			}
			return tx.Iterate(prefix, startKey, func(k, v []byte) (bool, error) {
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
				it := item{seq: seq}
				if it.p, err = persistence.DecodePacket(v); err != nil {
					it.bad = fmt.Errorf("%s: session %q: %s packet %d: %w", s.name, id, class, seq, err)
				} else {
					it.p.Seq = seq
				}
				page = append(page, it)
				return len(page) < pageSize, nil
			})
		})
		first = false
		if err != nil {
			return errors.Join(err, flush())
		}
		if gone || len(page) == 0 {
			return errors.Join(flush(), broken.err())
		}
		reread := false
		for i, it := range page {
			if i > 0 && s.commits.Load() != commits {
				reread = true
				break
			}
			next = it.seq + 1
			if it.bad != nil {
				broken.add(it.bad)
				continue
			}
			if err := ctx.Err(); err != nil {
				return errors.Join(err, flush())
			}
			del, err := fn(it.p)
			if del {
				if pending == nil {
					pending = make([]uint64, 0, len(page))
				}
				pending = append(pending, it.seq)
			}
			if err != nil {
				if ferr := flush(); ferr != nil {
					return errors.Join(iterResult(err), ferr)
				}
				return iterResult(err)
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if !reread && len(page) < pageSize {
			return broken.err()
		}
	}
}

// PacketsStore appends every packet of pp to its class, in slice order, in one
// atomic write.
func (ss *sessions) PacketsStore(ctx context.Context, id string, pp *persistence.PersistedPackets) error {
	s := ss.st()
	if pp == nil {
		return fmt.Errorf("%s: %w: nil PersistedPackets", s.name, persistence.ErrInvalidArgument)
	}
	var blobs [4][][]byte
	for _, c := range persistence.PacketClasses {
		for _, p := range pp.Class(c) {
			if err := persistence.ValidatePacket(p); err != nil {
				return fmt.Errorf("%s: %s: %w", s.name, c, err)
			}
			blobs[c-1] = append(blobs[c-1], persistence.EncodePacket(nil, p))
		}
	}
	return s.write(ctx, func(w *writer) error {
		h, err := w.header(id)
		if err != nil {
			return err
		}
		for ci, bs := range blobs {
			if len(bs) == 0 {
				continue
			}
			if _, err := w.appendBlobs(id, &h, persistence.PacketClass(ci+1), bs); err != nil {
				return err
			}
		}
		return nil
	})
}

// PacketsDelete removes every packet of the given classes of session id (all four
// when none are given).
func (ss *sessions) PacketsDelete(ctx context.Context, id string, classes ...persistence.PacketClass) error {
	s := ss.st()
	for _, c := range classes {
		if !c.Valid() {
			return s.invalidClass(c)
		}
	}
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	classes = append([]persistence.PacketClass(nil), classes...)
	return s.write(ctx, func(w *writer) error { return w.clearClasses(id, classes...) })
}
