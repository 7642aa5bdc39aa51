package broker

import (
	"context"
	"errors"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// Claims in cluster mode: a node loads a session from the store whenever it
// becomes its owner — at a CONNECT (takeover), and when it adopts the session of a
// node whose lease ended (claim) — since only the owner's memory is current.

// loadOne reads session s from the store into memory, replacing what s held:
// subscriptions, state, deadlines, in-flight and incoming QoS 2 packets and its
// queue's count. A session the store does not hold is left not stored. Caller
// holds s.mu.
func (b *Broker) loadOne(ctx context.Context, s *session) error {
	subs, err := b.sess.SubscriptionsLoad(ctx, s.id)
	if errors.Is(err, persistence.ErrNotFound) {
		b.unindex(s)
		s.resetContent()
		s.stored = false
		return nil
	}
	if err != nil {
		return err
	}
	st, err := b.sess.StateGet(ctx, s.id)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && st == nil) {
		st, err = &persistence.SessionState{ExpiryInterval: -1}, nil
	}
	if err != nil {
		return err
	}
	exp, err := b.sess.ExpiryGet(ctx, s.id)
	if errors.Is(err, persistence.ErrNotFound) {
		exp, err = persistence.SessionExpiry{}, nil
	}
	if err != nil {
		return err
	}
	s.resetContent()
	s.stored = true
	b.setSubs(s, subs)
	s.state = *st.Clone()
	s.expiry = exp
	s.nextPID = 1
	if err := b.restorePackets(ctx, s, nil); err != nil {
		return err
	}
	if s.nextPID == 0 {
		s.nextPID = 1
	}
	return nil
}

// claimOrphans adopts the sessions connected to nodes whose lease ended.
func (b *Broker) claimOrphans(ctx context.Context) {
	b.mu.RLock()
	var orphans []*session
	for _, s := range b.sessions {
		s.mu.Lock()
		if s.own.Epoch == 0 && s.owner != "" && !b.isLive(s.owner) {
			orphans = append(orphans, s)
		}
		s.mu.Unlock()
	}
	b.mu.RUnlock()
	for _, s := range orphans {
		if ctx.Err() != nil {
			return
		}
		b.adopt(ctx, s)
	}
}

// claimLoaded claims s for this node without a takeover (exactly one of
// concurrent claims wins) and loads it from the store. It reports false, having
// changed nothing, when another live node owns s or the claim or load failed; and
// when the store no longer holds s, which it then forgets. On true, s.mu is held.
func (b *Broker) claimLoaded(ctx context.Context, s *session, why string) (persistence.Ownership, bool) {
	o, err := b.sess.Claim(ctx, s.id, b.cl.node)
	if errors.Is(err, persistence.ErrOwned) || errors.Is(err, persistence.ErrLeaseExpired) {
		return o, false
	}
	if err != nil {
		b.storageError("Sessions.Claim("+why+")", s.id, err)
		return o, false
	}
	s.mu.Lock()
	if s.own.Epoch != 0 || s.gone {
		s.mu.Unlock()
		return o, false
	}
	s.own, s.owner, s.online = o, b.cl.node, false
	if err := b.loadOne(ctx, s); err != nil {
		s.own = persistence.Ownership{}
		s.mu.Unlock()
		b.storageError("loading a claimed session ("+why+")", s.id, err)
		return o, false
	}
	if !s.stored {
		s.gone = true
		s.mu.Unlock()
		b.forget(s)
		b.release(ctx, o)
		return o, false
	}
	return o, true
}

// adopt claims s, whose node is gone: exactly one node's claim wins. The winner
// loads it and records its disconnect (a will then waits for its delay, the
// session for its expiry, both run by this node's expiry loop).
func (b *Broker) adopt(ctx context.Context, s *session) {
	o, ok := b.claimLoaded(ctx, s, "adopt")
	if !ok {
		return
	}
	var batch persistence.Batch
	b.fence(s, &batch)
	if s.state.DisconnectedAt.IsZero() {
		now := b.now()
		s.state.DisconnectedAt = now
		s.expiry = s.deadlinesAt(now, true)
		batch.StateStore(s.id, &s.state).ExpiryStore(s.id, s.expiry)
	}
	batch.Notify(clusterChannel, note{K: "own", N: b.cl.node, ID: s.id, E: o.Epoch}.encode())
	if _, err := b.sess.Apply(ctx, &batch); err != nil {
		s.mu.Unlock()
		if errors.Is(err, persistence.ErrFenced) {
			b.lostSession(s, "adopt", err)
		} else {
			b.storageError("Sessions.Apply(adopt)", s.id, err)
		}
		return
	}
	s.mu.Unlock()
	b.log.Info("broker: adopted the session of a node that is gone", "client", s.id)
	b.kickExpiry()
}

// release gives up a claim (the session was deleted).
func (b *Broker) release(ctx context.Context, o persistence.Ownership) {
	if err := b.sess.Release(ctx, o); err != nil && !errors.Is(err, persistence.ErrFenced) {
		b.storageError("Sessions.Release", o.ID, err)
	}
}

// takeOver makes this node the owner of s for a CONNECT, whichever node held it
// (Sessions.Takeover; the "own" notification in the CONNECT's batch makes the old
// owner close its connection), and loads s from the store. Caller holds s.mu.
func (b *Broker) takeOver(ctx context.Context, s *session) packet.ReasonCode {
	o, err := b.sess.Takeover(ctx, s.id, b.cl.node)
	if err != nil {
		b.storageError("Sessions.Takeover", s.id, err)
		if errors.Is(err, persistence.ErrLeaseExpired) {
			return packet.ServerUnavailable
		}
		return packet.UnspecifiedError
	}
	s.own, s.owner, s.online = o, b.cl.node, false
	if err := b.loadOne(ctx, s); err != nil {
		s.own = persistence.Ownership{}
		b.storageError("loading a session taken over", s.id, err)
		return packet.UnspecifiedError
	}
	return packet.Success
}

// endStored deletes the records of gone session s, whose caller set s.ending,
// then forgets s and closes s.ending. Until then attach finds s and waits, so
// that a new connection with the same client id does not resume the records
// being deleted, nor store records this deletion would then remove.
func (b *Broker) endStored(s *session, why string) {
	b.deleteOwned(s, why)
	b.forget(s)
	s.mu.Lock()
	ending := s.ending
	s.mu.Unlock()
	close(ending)
}

// deleteOwned deletes a session that ends (s is gone): in a cluster
// fenced, with a "gone" notification, and its claim released.
func (b *Broker) deleteOwned(s *session, why string) {
	ctx, cancel := b.storeCtx()
	defer cancel()
	var batch persistence.Batch
	s.mu.Lock()
	own := s.own
	b.fence(s, &batch)
	s.own = persistence.Ownership{}
	s.mu.Unlock()
	batch.Delete(s.id)
	if b.cl != nil {
		batch.Notify(clusterChannel, note{K: "gone", N: b.cl.node, ID: s.id}.encode())
	}
	_, err := b.sess.Apply(ctx, &batch)
	switch {
	case errors.Is(err, persistence.ErrFenced):
		return // another node has it now
	case err != nil:
		b.storageError("Sessions.Delete("+why+")", s.id, err)
		return
	}
	if b.cl != nil && own.Epoch != 0 {
		b.release(ctx, own)
	}
}
