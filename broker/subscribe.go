package broker

import (
	"strings"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// match returns the sessions subscribed to topic, one target per session with its
// matching subscriptions merged. The subscription tree proposes candidates; each
// is confirmed against the session's own subscriptions under its lock.
func (b *Broker) match(from, topic string, qos byte) []target {
	type candidate struct {
		filter string
		s      *session
	}
	var cands []candidate
	b.subs.match(topic, func(filter string, s *session) { cands = append(cands, candidate{filter, s}) })
	var out []target
	at := map[*session]int{} // index in out
	for _, c := range cands {
		s := c.s
		s.mu.Lock()
		sub, ok := s.subs[c.filter]
		if s.gone || !ok || !persistence.MatchTopic(sub.Filter, topic) || (sub.NoLocal && s.id == from) {
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		i, seen := at[s]
		if !seen {
			i = len(out)
			at[s] = i
			out = append(out, target{s: s})
		}
		t := &out[i]
		t.qos = max(t.qos, min(sub.QoS, qos))
		t.retain = t.retain || sub.RetainAsPublished
		if sub.ID != 0 {
			t.ids = append(t.ids, sub.ID)
		}
	}
	return out
}

// unindex removes every subscription of s from the subscription tree, before s is
// cleaned or forgotten. Caller holds s.mu.
func (b *Broker) unindex(s *session) {
	for f := range s.subs {
		b.subs.remove(f, s)
	}
}

// handleSubscribe stores the granted subscriptions before acknowledging them, then
// sends the retained messages they ask for.
func (c *conn) handleSubscribe(p *packet.Subscribe) bool {
	b := c.b
	s := c.sess
	v5 := c.version == packet.Version5
	var subID uint32
	if ids := p.Properties.SubscriptionIDs; len(ids) > 0 {
		subID = ids[0]
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var granted []persistence.Subscription
	var grantedIdx []int
	for i, o := range p.Subscriptions {
		filter := strings.Clone(o.Filter)
		if _, _, shared := persistence.SplitSharedFilter(filter); shared || strings.HasPrefix(filter, "$share/") {
			codes[i] = packet.SharedSubNotSupported
			continue
		}
		if err := persistence.ValidFilter(filter); err != nil {
			codes[i] = packet.TopicFilterInvalid
			continue
		}
		q, err := b.authorizeSubscribe(c.ctx, c.info, filter, o.QoS)
		if err != nil {
			b.log.Info("broker: subscription not authorized", "client", c.info.ID, "filter", filter, "err", err)
			codes[i] = packet.NotAuthorized
			continue
		}
		codes[i] = packet.ReasonCode(q)
		granted = append(granted, persistence.Subscription{
			Filter: filter, QoS: q, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished,
			RetainHandling: o.RetainHandling, ID: subID,
		})
		grantedIdx = append(grantedIdx, i)
	}
	s.mu.Lock()
	stored := s.stored
	s.mu.Unlock()
	if stored && len(granted) > 0 {
		ctx, cancel := b.storeCtx()
		err := b.sess.SubscriptionsStore(ctx, s.id, granted...)
		cancel()
		if err != nil {
			b.storageError("SubscriptionsStore", s.id, err)
			for _, i := range grantedIdx {
				codes[i] = packet.UnspecifiedError
			}
			granted = nil
		}
	}
	existed := make([]bool, len(granted))
	for _, sub := range granted {
		b.subs.add(sub.Filter, s)
	}
	s.mu.Lock()
	for i, sub := range granted {
		_, existed[i] = s.subs[sub.Filter]
		s.subs[sub.Filter] = sub
	}
	s.mu.Unlock()
	if !v5 {
		for i, rc := range codes {
			if rc.IsError() {
				codes[i] = packet.UnspecifiedError // 3.1.1 knows only 0x80
			}
		}
	}
	if !c.sendPacket(&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes}) {
		return false
	}
	for i, sub := range granted {
		// Retain handling [MQTT-3.3.1-9..11]: 0 always, 1 only for a new
		// subscription, 2 never.
		if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed[i]) {
			continue
		}
		b.sendRetained(s, sub)
	}
	return true
}

// handleUnsubscribe removes subscriptions from the store before acknowledging.
func (c *conn) handleUnsubscribe(p *packet.Unsubscribe) bool {
	b := c.b
	s := c.sess
	codes := make([]packet.ReasonCode, len(p.Filters))
	filters := make([]string, len(p.Filters))
	s.mu.Lock()
	stored := s.stored
	for i, f := range p.Filters {
		filters[i] = strings.Clone(f)
		if _, ok := s.subs[f]; !ok {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	s.mu.Unlock()
	if stored {
		ctx, cancel := b.storeCtx()
		err := b.sess.SubscriptionsDelete(ctx, s.id, filters...)
		cancel()
		if err != nil {
			b.storageError("SubscriptionsDelete", s.id, err)
			if c.version != packet.Version5 {
				c.close(dispLost, 0) // 3.1.1 UNSUBACK cannot carry a failure
				return false
			}
			for i := range codes {
				codes[i] = packet.UnspecifiedError
			}
			return c.sendPacket(&packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
		}
	}
	s.mu.Lock()
	for _, f := range filters {
		if _, ok := s.subs[f]; ok {
			delete(s.subs, f)
			b.subs.remove(f, s)
		}
	}
	s.mu.Unlock()
	return c.sendPacket(&packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
}
