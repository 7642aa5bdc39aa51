package broker

import (
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Wills and expiry in cluster mode: only the session's owner runs them, and the
// node that runs a session's deadline claims it first (exactly one claim of
// concurrent ones wins). A will's removal — or the session's, when it expires —
// commits in the same fenced batch as the will's publication, so a will is
// published exactly once cluster-wide: by the owner, once.

// expireClustered is expireOne in cluster mode.
func (b *Broker) expireClustered(id string, s *session, expDue bool, e persistence.SessionExpiry, now time.Time) (willFired, removed bool) {
	if s == nil {
		s = b.remoteSession(id)
	}
	if !b.claimForExpiry(s) {
		return false, false
	}
	s.mu.Lock()
	if s.conn != nil || s.gone || s.own.Epoch == 0 {
		s.mu.Unlock()
		return false, false
	}
	willDue := s.state.Will != nil && (expDue || (!e.WillAt.IsZero() && !now.Before(e.WillAt)))
	if !willDue && !expDue {
		s.mu.Unlock()
		return false, false
	}
	if !willDue {
		s.gone = true
		s.ending = make(chan struct{})
		b.unindex(s)
		s.mu.Unlock()
		b.endStored(s, "expired") // cluster_claim.go
		b.log.Debug("broker: session expired", "client", id)
		return false, true
	}
	will := s.state.Will
	var after persistence.Batch
	if expDue {
		after.Delete(id)
		after.Notify(clusterChannel, note{K: "gone", N: b.cl.node, ID: id}.encode())
	} else {
		st := s.state
		st.Will = nil
		exp := s.expiry
		exp.WillAt = time.Time{}
		after.StateStore(id, &st).ExpiryStore(id, exp)
	}
	own := s.own
	s.mu.Unlock()
	if !b.publishWill(id, will, &incomingMark{s: s, after: &after}) {
		return false, false // kept: tried again at the next run, by whoever owns it then
	}
	s.mu.Lock()
	if s.own != own {
		s.mu.Unlock()
		return true, false
	}
	s.state.Will = nil
	s.expiry.WillAt = time.Time{}
	if !expDue {
		s.mu.Unlock()
		return true, false
	}
	s.gone = true
	b.unindex(s)
	s.own = persistence.Ownership{}
	s.mu.Unlock()
	b.forget(s)
	ctx, cancel := b.storeCtx()
	b.release(ctx, own)
	cancel()
	return true, true
}

// claimForExpiry makes this node the owner of s, offline, to run its deadlines:
// false when another live node owns it or the client is connected somewhere.
func (b *Broker) claimForExpiry(s *session) bool {
	s.mu.Lock()
	if s.own.Epoch != 0 {
		s.mu.Unlock()
		return true
	}
	online := s.online
	s.mu.Unlock()
	if online {
		return false
	}
	ctx, cancel := b.storeCtx()
	defer cancel()
	o, ok := b.claimLoaded(ctx, s, "expiry") // cluster_claim.go
	if !ok {
		return false
	}
	s.mu.Unlock()
	b.notifyLater(note{K: "own", N: b.cl.node, ID: s.id, E: o.Epoch})
	return true
}
