package conformance

// More deliberately broken drivers for the self-test (see broken_test.go): each
// breaks one further rule the suite's cases pin.

import (
	"context"
	"errors"
	"sync"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- Delete that leaves packets behind ----

// leftoverPackets forgets to delete packets with their session: a session created
// again with the same id finds its old queues.
type leftoverPackets struct {
	driver.Conn
	mu   sync.Mutex
	left map[string]map[persistence.PacketClass][]*persistence.PersistedPacket
}

func (c *leftoverPackets) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	deleted := map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{}
	for _, op := range ops {
		if op.Kind != driver.OpDelete {
			continue
		}
		old := map[persistence.PacketClass][]*persistence.PersistedPacket{}
		for _, class := range persistence.PacketClasses {
			_ = c.Conn.PacketsForEach(ctx, op.ID, class, func(p *persistence.PersistedPacket) (bool, error) {
				old[class] = append(old[class], p)
				return false, nil
			})
		}
		deleted[op.ID] = old
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	for id, old := range deleted {
		c.left[id] = old
	}
	c.mu.Unlock()
	for _, op := range ops {
		if op.Kind != driver.OpCreate {
			continue
		}
		if ok, _ := c.Conn.Exists(ctx, op.ID); !ok {
			continue
		}
		c.mu.Lock()
		old := c.left[op.ID]
		delete(c.left, op.ID)
		c.mu.Unlock()
		var back []driver.Op
		for _, class := range persistence.PacketClasses {
			for _, p := range old[class] {
				back = append(back, driver.Op{Kind: driver.OpPacketAppend, ID: op.ID, Class: class, Packet: p})
			}
		}
		if len(back) > 0 {
			if _, err := c.Conn.Apply(ctx, back); err != nil {
				return seqs, err
			}
		}
	}
	return seqs, nil
}

// ---- Create of an existing session succeeds ----

type noErrExists struct{ driver.Conn }

func (c noErrExists) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Conn.Apply(ctx, ops)
	if len(ops) == 1 && ops[0].Kind == driver.OpCreate && errors.Is(err, persistence.ErrAlreadyExists) {
		return nil, nil
	}
	return seqs, err
}

// ---- retained Delete does nothing ----

type retainedDeleteNoop struct{ driver.Conn }

func (retainedDeleteNoop) RetainedDelete(context.Context, string) error { return nil }

// ---- Apply that is not atomic ----

// applyOneByOne commits a batch's operations one at a time and stops at the first
// error, leaving the earlier ones written.
type applyOneByOne struct{ driver.Conn }

func (c applyOneByOne) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	var seqs []uint64
	for _, op := range ops {
		s, err := c.Conn.Apply(ctx, []driver.Op{op})
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, s...)
	}
	return seqs, nil
}

// ---- creation time not from the injected clock ----

type wallClockInfo struct{ driver.Conn }

func (c wallClockInfo) Info(ctx context.Context) (persistence.SystemInfo, error) {
	info, err := c.Conn.Info(ctx)
	info.CreatedAt = info.CreatedAt.Add(-3 * 24 * 3600e9) // as if stamped by another clock
	return info, err
}
