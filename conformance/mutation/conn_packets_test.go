package mutation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- packets ----

type lifoConn struct{ driver.Conn }

func (c lifoConn) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	var all []*driver.PersistedPacket
	if err := c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		all = append(all, p)
		return false, nil
	}); err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		del, err := fn(all[i])
		if del {
			if _, e := c.Conn.Apply(ctx, []driver.Op{{Kind: driver.OpPacketDelete, ID: id, Class: class, Seq: all[i].Seq}}); e != nil {
				return e
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countDrift reports PacketCount off by a drift the bug accumulates.
type countDrift struct {
	driver.Conn
	mu    sync.Mutex
	drift map[qkey]int64
	// iter: deletes from PacketsForEach are not counted; missing: deleting a
	// missing packet still decrements; race: the existence check and the delete
	// are not atomic, so concurrent acks of one packet all decrement.
	iter, missing, race bool
	inflight            map[qkey]map[uint64]int
}

func newDrift(iter, missing, race bool) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn {
		return &countDrift{Conn: c, drift: map[qkey]int64{}, inflight: map[qkey]map[uint64]int{}, iter: iter, missing: missing, race: race}
	}
}

func (c *countDrift) add(k qkey, d int64) {
	c.mu.Lock()
	c.drift[k] += d
	c.mu.Unlock()
}

func (c *countDrift) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if !single(ops, driver.OpPacketDelete) || !(c.missing || c.race) {
		if len(ops) > 0 && (ops[0].Kind == driver.OpDelete || ops[0].Kind == driver.OpPacketsDelete) {
			c.mu.Lock()
			for k := range c.drift {
				if k.id == ops[0].ID {
					delete(c.drift, k)
				}
			}
			c.mu.Unlock()
		}
		return c.Conn.Apply(ctx, ops)
	}
	op := ops[0]
	k := qkey{op.ID, op.Class}
	had := exists(c.Conn, ctx, op.ID, op.Class, op.Seq)
	if c.race && had {
		c.mu.Lock()
		if c.inflight[k] == nil {
			c.inflight[k] = map[uint64]int{}
		}
		c.inflight[k][op.Seq]++
		c.mu.Unlock()
		window()
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	switch {
	case c.missing && !had:
		c.add(k, -1)
	case c.race && had:
		c.mu.Lock()
		// every caller that saw the packet decrements; the store decremented once
		if n := c.inflight[k][op.Seq]; n > 1 {
			c.drift[k]--
		}
		c.mu.Unlock()
	}
	return seqs, nil
}

func (c *countDrift) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	if !c.iter {
		return c.Conn.PacketsForEach(ctx, id, class, fn)
	}
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		del, err := fn(p)
		if del {
			c.add(qkey{id, class}, 1)
		}
		return del, err
	})
}

func (c *countDrift) PacketCount(ctx context.Context, id string, class driver.PacketClass) (uint64, error) {
	n, err := c.Conn.PacketCount(ctx, id, class)
	c.mu.Lock()
	d := c.drift[qkey{id, class}]
	c.mu.Unlock()
	return uint64(int64(n) + d), err
}

// deleteMissingNotFound: deleting a packet that is not there is ErrNotFound
// instead of a no-op.
var deleteMissingNotFound = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	for _, op := range ops {
		if op.Kind == driver.OpPacketDelete && !exists(c, ctx, op.ID, op.Class, op.Seq) {
			return nil, fmt.Errorf("packet %d: %w", op.Seq, driver.ErrNotFound)
		}
	}
	return c.Apply(ctx, ops)
})

// updateUpserts: an update of a missing packet appends it (an upsert).
var updateUpserts = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketUpdate) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Packet.Seq) {
		op := ops[0]
		op.Kind = driver.OpPacketAppend
		_, err := c.Apply(ctx, []driver.Op{op})
		return nil, err
	}
	return c.Apply(ctx, ops)
})

// deleteIgnoresClass: a delete that finds no packet of that seq in its class
// deletes the packet of that seq in whichever class holds it.
var deleteIgnoresClass = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketDelete) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Seq) {
		for _, class := range driver.PacketClasses {
			if exists(c, ctx, ops[0].ID, class, ops[0].Seq) {
				op := ops[0]
				op.Class = class
				return c.Apply(ctx, []driver.Op{op})
			}
		}
	}
	return c.Apply(ctx, ops)
})

// deleteIgnoresSession: a delete that finds no packet of that seq in its session
// deletes the packet of that seq in the session that holds it.
var deleteIgnoresSession = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketDelete) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Seq) {
		var ids []string
		_ = c.LoadForEach(ctx, func(ls *driver.LoadedSession) error { ids = append(ids, ls.ID); return nil })
		for _, id := range ids {
			if exists(c, ctx, id, ops[0].Class, ops[0].Seq) {
				op := ops[0]
				op.ID = id
				return c.Apply(ctx, []driver.Op{op})
			}
		}
	}
	return c.Apply(ctx, ops)
})

// stopDropsDelete: the packet whose callback asked for its deletion and stopped
// the iteration in the same call is not deleted.
type stopDropsDelete struct{ driver.Conn }

func (c stopDropsDelete) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		del, err := fn(p)
		if err != nil {
			return false, err
		}
		return del, nil
	})
}

// updateMerges: an update writes only the new Data (and QoS) over the stored
// packet: PacketID, ProtocolVersion and ExpireAt keep their old values.
var updateMerges = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	out := slices.Clone(ops)
	for i, op := range out {
		if op.Kind != driver.OpPacketUpdate {
			continue
		}
		old, err := c.PacketGet(ctx, op.ID, op.Class, op.Packet.Seq)
		if err != nil {
			continue
		}
		old.Data, old.QoS = op.Packet.Data, op.Packet.QoS
		out[i].Packet = old
	}
	return c.Apply(ctx, out)
})

// getIgnoresClass: PacketGet that finds nothing in the class looks in the others.
type getIgnoresClass struct{ driver.Conn }

func (c getIgnoresClass) PacketGet(ctx context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	if errors.Is(err, driver.ErrNotFound) {
		for _, other := range driver.PacketClasses {
			if q, e := c.Conn.PacketGet(ctx, id, other, seq); e == nil {
				return q, nil
			}
		}
	}
	return p, err
}

// aliasPackets keeps the caller's packet of every append and returns it (with its
// seq) from PacketGet: a change the caller makes after the call shows.
type aliasPackets struct {
	driver.Conn
	mu   sync.Mutex
	kept map[uint64]*driver.PersistedPacket
}

func (c *aliasPackets) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for _, op := range ops {
		if op.Kind == driver.OpPacketAppend {
			c.kept[seqs[i]] = op.Packet
			i++
		}
	}
	return seqs, nil
}

func (c *aliasPackets) PacketGet(ctx context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	if err == nil {
		c.mu.Lock()
		if k := c.kept[seq]; k != nil {
			p.Data = k.Data
		}
		c.mu.Unlock()
	}
	return p, err
}
