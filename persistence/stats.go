package persistence

import (
	"context"
	"errors"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

type (
	// ClassStats is the size of one packet class of one session: its packet count
	// and the sum of the packets' len(Data).
	ClassStats = driver.ClassStats
	// PacketStats is the size of every packet class of one session; see
	// [PacketStats.Class].
	PacketStats = driver.PacketStats
	// PacketStatsLoader is called once per session by [Sessions.PacketStatsForEach].
	PacketStatsLoader = driver.PacketStatsLoader
)

// PacketStatsForEach calls fn once for every session that holds at least one
// packet, in no particular order, with the number of packets and the sum of their
// len(Data) in each class: what a broker needs at start-up to know its queues
// without reading them. A session without packets may be visited (with zero stats)
// or not. Drivers that can compute it in a few set-based reads do (see
// driver.PacketStatsConn); for the others the SDK walks every session's packets,
// which costs what reading them costs. fn's *PacketStats is fn's to keep. A session
// deleted during the iteration may or may not be visited.
func (ss *Sessions) PacketStatsForEach(ctx context.Context, fn PacketStatsLoader) error {
	s := ss.s
	ctx, c, err := s.begin(ctx, "PacketStatsForEach", 0)
	if err == nil && fn == nil {
		err = invalidArg("nil PacketStatsLoader")
	}
	if err != nil {
		return c.end(err)
	}
	guarded := func(st *PacketStats) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(st)
	}
	if pc, ok := s.conn.(driver.PacketStatsConn); ok {
		return c.end(pc.PacketStatsForEach(ctx, guarded))
	}
	return c.end(packetStatsFallback(ctx, s.conn, guarded))
}

// packetStatsFallback derives PacketStatsForEach from LoadForEach and
// PacketsForEach, for drivers without the capability.
func packetStatsFallback(ctx context.Context, conn driver.Conn, fn PacketStatsLoader) error {
	return conn.LoadForEach(ctx, func(l *LoadedSession) error {
		st := &PacketStats{ID: l.ID}
		for _, class := range driver.PacketClasses {
			err := conn.PacketsForEach(ctx, l.ID, class, func(p *PersistedPacket) (bool, error) {
				st.Add(class, len(p.Data))
				return false, nil
			})
			if errors.Is(err, ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
		}
		if st.Empty() {
			return nil
		}
		return fn(st)
	})
}
