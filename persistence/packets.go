package persistence

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

func checkClass(class PacketClass) error {
	if !class.Valid() {
		return invalidArg("packet class %d", uint8(class))
	}
	return nil
}

// PacketAppend stores a copy of p at the tail of (id, class) and returns the sequence
// number assigned to it. p.Seq is ignored and left untouched.
func (ss *Sessions) PacketAppend(ctx context.Context, id string, class PacketClass, p *PersistedPacket) (uint64, error) {
	seqs, err := ss.apply(ctx, "PacketAppend", []driver.Op{{Kind: driver.OpPacketAppend, ID: id, Class: class, Packet: p}})
	if err != nil {
		return 0, err
	}
	if len(seqs) != 1 {
		return 0, errWrongSeqs(len(seqs), 1)
	}
	return seqs[0], nil
}

// PacketGet returns the packet with sequence number seq, or [ErrNotFound].
func (ss *Sessions) PacketGet(ctx context.Context, id string, class PacketClass, seq uint64) (*PersistedPacket, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "PacketGet", 0)
	if err == nil {
		err = checkClass(class)
	}
	if err != nil {
		return nil, c.end(err)
	}
	p, err := s.conn.PacketGet(ctx, id, class, seq)
	return p, c.end(err)
}

// PacketUpdate replaces the packet with sequence number p.Seq in place, keeping its
// position (a PUBREL replacing its PUBLISH). Returns [ErrNotFound] if no such packet
// exists.
func (ss *Sessions) PacketUpdate(ctx context.Context, id string, class PacketClass, p *PersistedPacket) error {
	_, err := ss.apply(ctx, "PacketUpdate", []driver.Op{{Kind: driver.OpPacketUpdate, ID: id, Class: class, Packet: p}})
	return err
}

// PacketDelete removes the packet with sequence number seq (an acknowledgement).
// Deleting a missing packet is a no-op.
func (ss *Sessions) PacketDelete(ctx context.Context, id string, class PacketClass, seq uint64) error {
	_, err := ss.apply(ctx, "PacketDelete", []driver.Op{{Kind: driver.OpPacketDelete, ID: id, Class: class, Seq: seq}})
	return err
}

// PacketCount returns the number of packets in (id, class).
func (ss *Sessions) PacketCount(ctx context.Context, id string, class PacketClass) (uint64, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "PacketCount", 0)
	if err == nil {
		err = checkClass(class)
	}
	if err != nil {
		return 0, c.end(err)
	}
	n, err := s.conn.PacketCount(ctx, id, class)
	return n, c.end(err)
}

// PacketsForEach calls fn for each packet of (id, class) in FIFO order (see
// [PacketLoader] for deleting from fn). Packets appended during the iteration may or
// may not be visited.
func (ss *Sessions) PacketsForEach(ctx context.Context, id string, class PacketClass, fn PacketLoader) error {
	s := ss.s
	ctx, c, err := s.begin(ctx, "PacketsForEach", 0)
	if err == nil {
		err = checkClass(class)
	}
	if err == nil && fn == nil {
		err = invalidArg("nil PacketLoader")
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.PacketsForEach(ctx, id, class, func(p *PersistedPacket) (bool, error) {
		if err := s.between(ctx); err != nil {
			return false, err
		}
		return fn(p)
	}))
}

// PacketsStore appends every packet of pp to its class, in slice order, in one atomic
// write. Sequence numbers are assigned as by PacketAppend.
func (ss *Sessions) PacketsStore(ctx context.Context, id string, pp *PersistedPackets) error {
	if pp == nil {
		_, c, err := ss.s.begin(ctx, "PacketsStore", 0)
		if err == nil {
			err = invalidArg("nil PersistedPackets")
		}
		return c.end(err)
	}
	var ops []driver.Op
	for _, class := range PacketClasses {
		for _, p := range pp.Class(class) {
			ops = append(ops, driver.Op{Kind: driver.OpPacketAppend, ID: id, Class: class, Packet: p})
		}
	}
	return ss.write(ctx, "PacketsStore", id, ops)
}

// PacketsDelete removes every packet of the given classes of id (all four when none
// are given). The session itself stays.
func (ss *Sessions) PacketsDelete(ctx context.Context, id string, classes ...PacketClass) error {
	if len(classes) == 0 {
		classes = PacketClasses
	}
	ops := make([]driver.Op, len(classes))
	for i, class := range classes {
		ops[i] = driver.Op{Kind: driver.OpPacketsDelete, ID: id, Class: class}
	}
	_, err := ss.apply(ctx, "PacketsDelete", ops)
	return err
}
