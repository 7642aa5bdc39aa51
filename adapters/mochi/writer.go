package mochi

import (
	"context"
	"errors"

	"github.com/mqttstore/mqttstore/persistence"
)

type opKind uint8

const (
	opAppend opKind = iota + 1
	opUpdate
	opDelete
)

// writeOp is one packet write for the background writer. seq points at the
// packet's sequence number: set by the writer for an append when it commits, read
// by it for updates and deletes (which are queued after the append, so the writer
// has set it by then, or commits the append first).
type writeOp struct {
	kind   opKind
	client string
	class  persistence.PacketClass
	seq    *uint64
	p      *persistence.PersistedPacket
	done   chan struct{} // closed once committed (or failed), when not nil
}

// maxBatch bounds the operations of one commit.
const maxBatch = 1024

// writer commits queued packet writes in order, as many per commit as are waiting:
// appends and updates of in-flight packets (their callers wait for the commit),
// acknowledgement deletes and journal deletes (nobody waits for those). Order is the
// queue's, so an acknowledgement delete never overtakes the append it deletes.
func (h *Hook) writer() {
	defer close(h.opsDone)
	var (
		b       persistence.Batch
		batched []writeOp
		pending = map[*uint64]bool{} // appends in b, not committed yet
	)
	commit := func() {
		if b.Len() == 0 {
			return
		}
		ctx, cancel := h.ctx()
		seqs, err := h.sess.Apply(ctx, &b)
		if err == nil {
			i := 0
			for _, op := range batched {
				if op.kind == opAppend {
					*op.seq = seqs[i]
					i++
				}
			}
		} else {
			// One failed operation (a session deleted meanwhile) fails the batch:
			// run them one by one.
			for _, op := range batched {
				h.writeOne(ctx, op)
			}
		}
		cancel()
		for _, op := range batched {
			if op.done != nil {
				close(op.done)
			}
		}
		b.Reset()
		batched = batched[:0]
		clear(pending)
	}
	add := func(op writeOp) {
		if op.kind != opAppend && pending[op.seq] {
			commit() // its append must have its sequence number first
		}
		switch op.kind {
		case opAppend:
			b.PacketAppend(op.client, op.class, op.p)
			pending[op.seq] = true
		case opUpdate:
			p := *op.p
			p.Seq = *op.seq
			b.PacketUpdate(op.client, op.class, &p)
		case opDelete:
			b.PacketDelete(op.client, op.class, *op.seq)
		}
		batched = append(batched, op)
	}
	for op := range h.ops {
		add(op)
	more:
		for b.Len() < maxBatch {
			select {
			case op, ok := <-h.ops:
				if !ok {
					break more
				}
				add(op)
			default:
				break more
			}
		}
		commit()
	}
}

func (h *Hook) writeOne(ctx context.Context, op writeOp) {
	var err error
	switch op.kind {
	case opAppend:
		var seq uint64
		seq, err = h.sess.PacketAppend(ctx, op.client, op.class, op.p)
		*op.seq = seq
	case opUpdate:
		p := *op.p
		p.Seq = *op.seq
		err = h.sess.PacketUpdate(ctx, op.client, op.class, &p)
	case opDelete:
		err = h.sess.PacketDelete(ctx, op.client, op.class, *op.seq)
	}
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		h.logErr("write in-flight packet", op.client, err)
	}
}
