package broker

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// restore loads every stored session into memory — subscriptions, state,
// deadlines, in-flight packets (bounded by the window they were sent in) and
// incoming QoS 2 packet ids — and counts, without keeping, its queued messages.
// A session that was connected when the previous process died is treated as
// disconnected now. Then every deadline that passed fires.
func (b *Broker) restore(ctx context.Context) error {
	now := b.now()
	st := &b.restored
	// quarantining and quarantineSkipped (quarantine.go) set damaged sessions
	// aside under Options.Quarantine; without it they change nothing.
	err := b.sess.LoadForEach(ctx, b.quarantining(func(ls *persistence.LoadedSession) error {
		s := newSession(ls.ID)
		s.stored = true
		if ls.State != nil {
			s.state = *ls.State.Clone()
		} else {
			// Written by something else than this broker: keep it until cleaned.
			s.state = persistence.SessionState{ProtocolVersion: ls.Base.ProtocolVersion, ExpiryInterval: -1}
		}
		for _, sub := range ls.Subscriptions {
			s.subs[sub.Filter] = sub
			b.subs.add(sub.Filter, s)
		}
		if ls.Expiry != nil {
			s.expiry = *ls.Expiry
		}
		var stale []uint64
		err := b.sess.PacketsForEach(ctx, s.id, persistence.ClassUnAck, func(p *persistence.PersistedPacket) (bool, error) {
			if p.PacketID == 0 || len(p.Data) == 0 {
				b.log.Error("broker: broken in-flight packet dropped", "client", s.id, "seq", p.Seq, "id", p.PacketID)
				return true, nil
			}
			if old := s.inflight[p.PacketID]; old != nil {
				// A packet id is given to a new flight only after the client
				// acknowledged the previous one, and that acknowledgement's delete
				// may not have been committed before the process ended (see
				// session.acked). The older record (lower seq, met first) is it.
				stale = append(stale, old.seq)
			}
			s.inflight[p.PacketID] = &flight{
				seq: p.Seq, pid: p.PacketID, qos: p.QoS, pkt: p,
				rel: packet.Type(p.Data[0]>>4) == packet.PUBREL,
			}
			s.nextPID = max(s.nextPID, p.PacketID+1)
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("in-flight packets of %q: %w", s.id, err)
		}
		if len(stale) > 0 {
			var batch persistence.Batch
			for _, seq := range stale {
				batch.PacketDelete(s.id, persistence.ClassUnAck, seq)
			}
			if _, err := b.sess.Apply(ctx, &batch); err != nil {
				return fmt.Errorf("acknowledged in-flight packets of %q: %w", s.id, err)
			}
		}
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		err = b.sess.PacketsForEach(ctx, s.id, persistence.ClassIncoming, func(p *persistence.PersistedPacket) (bool, error) {
			s.incoming[p.PacketID] = p.Seq
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("incoming QoS 2 state of %q: %w", s.id, err)
		}
		err = b.sess.PacketsForEach(ctx, s.id, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
			s.queued++
			s.queuedBytes += int64(len(p.Data))
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("queue of %q: %w", s.id, err)
		}
		if s.state.DisconnectedAt.IsZero() {
			s.state.DisconnectedAt = now
			s.expiry = s.deadlinesAt(now, true)
			var batch persistence.Batch
			batch.StateStore(s.id, &s.state)
			batch.ExpiryStore(s.id, s.expiry)
			if _, err := b.sess.Apply(ctx, &batch); err != nil {
				return fmt.Errorf("recording the disconnect of %q: %w", s.id, err)
			}
		}
		b.sessions[s.id] = s
		st.Sessions++
		st.Subscriptions += len(s.subs)
		st.QueuedMessages += s.queued
		st.InflightMessages += len(s.inflight)
		return nil
	}))
	if err = b.quarantineSkipped(ctx, err); err != nil {
		return err
	}
	n, err := b.ret.Count(ctx)
	if err != nil {
		return fmt.Errorf("counting retained messages: %w", err)
	}
	st.Retained = int(n)
	st.WillsFired, st.SessionsExpired = b.runExpiry(ctx)
	b.log.Info("broker: state restored", "sessions", st.Sessions, "subscriptions", st.Subscriptions,
		"queued", st.QueuedMessages, "inflight", st.InflightMessages, "retained", st.Retained,
		"wills_fired", st.WillsFired, "sessions_expired", st.SessionsExpired, "quarantined", st.Quarantined)
	return nil
}
