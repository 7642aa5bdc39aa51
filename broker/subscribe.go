package broker

import (
	"strings"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// match returns the sessions subscribed to topic, one target per session with its
// matching subscriptions merged, plus one target per matching shared
// subscription group (one member chosen by pickMember). The subscription tree
// proposes candidates; each is confirmed against the session's own subscriptions
// under its lock.
func (b *Broker) match(from, topic string, qos byte) []target {
	type candidate struct {
		filter string
		s      *session
	}
	type groupCand struct {
		g       *shareGroup
		members []*session
	}
	var cands []candidate
	var groups []groupCand
	b.subs.matchAll(topic,
		func(filter string, s *session) { cands = append(cands, candidate{filter, s}) },
		func(g *shareGroup, members []*session) { groups = append(groups, groupCand{g, members}) })
	var out []target
	var at map[*session]int // index in out, once there are several candidates
	for _, c := range cands {
		s := c.s
		s.mu.Lock()
		sub, ok := s.subs[c.filter]
		if s.gone || !ok || !persistence.MatchTopic(sub.Filter, topic) || (sub.NoLocal && s.id == from) {
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		i, seen := -1, false
		if len(cands) == 1 {
			// The common case needs no map.
		} else {
			if at == nil {
				at = make(map[*session]int, len(cands))
			}
			i, seen = at[s]
		}
		if !seen {
			i = len(out)
			if at != nil {
				at[s] = i
			}
			out = append(out, target{s: s})
		}
		t := &out[i]
		t.qos = max(t.qos, min(sub.QoS, qos))
		t.retain = t.retain || sub.RetainAsPublished
		if sub.ID != 0 {
			t.ids = append(t.ids, sub.ID)
		}
	}
	for _, gc := range groups {
		if !persistence.MatchTopic(gc.g.filter, topic) {
			continue
		}
		if t, ok := b.pickMember(gc.g, gc.members, qos, nil); ok {
			out = append(out, t)
		}
	}
	return out
}

// pickMember chooses the member of share group g that gets the next message:
// members take turns, and the turn skips to the first member that can take
// the message at once (online, with room in its in-flight window and nothing
// queued); failing that, an online member queues it, and failing that an
// offline member whose session is stored (it gets the message when it comes
// back). except is left out (a member whose messages are being handed on).
func (b *Broker) pickMember(g *shareGroup, members []*session, qos byte, except *session) (target, bool) {
	n := len(members)
	if n == 0 {
		return target{}, false
	}
	start := int(g.next.Add(1))
	var busy, offline *target
	for i := range n {
		s := members[(start+i)%n]
		if s == except {
			continue
		}
		s.mu.Lock()
		sub, ok := s.subs[g.key]
		online := s.conn != nil && s.ready
		room := online && (qos == 0 || (!s.hasQueue() && len(s.inflight) < s.conn.window))
		usable := ok && !s.gone && (online || s.stored)
		s.mu.Unlock()
		if !usable {
			continue
		}
		t := target{s: s, qos: min(sub.QoS, qos), retain: sub.RetainAsPublished, share: g}
		if sub.ID != 0 {
			t.ids = []uint32{sub.ID}
		}
		switch {
		case room:
			return t, true
		case online && busy == nil:
			busy = &t
		case !online && offline == nil:
			offline = &t
		}
	}
	if busy != nil {
		return *busy, true
	}
	if offline != nil {
		return *offline, true
	}
	return target{}, false
}

// unindex removes every subscription of s from the subscription tree, before s is
// cleaned or forgotten. Caller holds s.mu.
func (b *Broker) unindex(s *session) {
	for f := range s.subs {
		b.subs.remove(f, s)
	}
}

// handleSubscribe makes the granted subscriptions effective at once (a message
// that arrives from now on is routed to them, as in a broker without a store),
// then stores them and acknowledges; when the store fails the subscriptions are
// withdrawn (the previous options of a replaced one come back) and the SUBACK
// says so. Then it sends the retained messages they ask for.
func (c *conn) handleSubscribe(p *packet.Subscribe) bool {
	b := c.b
	s := c.sess
	v5 := c.version == packet.Version5
	var subID uint32
	if ids := p.Properties.SubscriptionIDs; len(ids) > 0 {
		if b.limits.SubIDUnavailable {
			// Subscription Identifier Available 0 was announced: a SUBSCRIBE
			// carrying one is answered with DISCONNECT 0xA1.
			c.close(dispLost, packet.SubIDNotSupported)
			return false
		}
		subID = ids[0]
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var granted []persistence.Subscription
	var grantedIdx []int
	var existed []bool
	var prev []persistence.Subscription
	for i, o := range p.Subscriptions {
		filter := strings.Clone(o.Filter)
		rc, ok := b.checkFilter(filter)
		if !ok {
			codes[i] = rc
			continue
		}
		if strings.HasPrefix(filter, "$share/") && o.NoLocal && v5 {
			c.protocolError("No Local on a shared subscription") // [MQTT-3.8.3-4]
			b.withdraw(s, granted, existed, prev)
			return false
		}
		q, err := b.authorizeSubscribe(c.ctx, c.info, filter, o.QoS)
		if err != nil {
			b.log.Info("broker: subscription not authorized", "client", c.info.ID, "filter", filter, "err", err)
			codes[i] = packet.NotAuthorized
			continue
		}
		q = min(q, b.limits.maxQoS())
		codes[i] = packet.ReasonCode(q)
		sub := persistence.Subscription{
			Filter: filter, QoS: q, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished,
			RetainHandling: o.RetainHandling, ID: subID,
		}
		// Effective now, before the commit: a message arriving from here on
		// is routed to it.
		s.mu.Lock()
		old, had := s.subs[filter]
		b.subs.add(filter, s)
		s.subs[filter] = sub
		s.mu.Unlock()
		granted = append(granted, sub)
		grantedIdx = append(grantedIdx, i)
		existed = append(existed, had)
		prev = append(prev, old)
	}
	s.mu.Lock()
	stored := s.stored
	s.mu.Unlock()
	if stored && len(granted) > 0 {
		var batch persistence.Batch
		for _, sub := range granted {
			batch.SubscriptionStore(s.id, sub)
		}
		s.mu.Lock()
		routed := b.announceSubs(s, &batch, true) // cluster.go: the other nodes route them before the SUBACK
		s.mu.Unlock()
		ctx, cancel := b.storeCtx()
		_, err := b.applyOwned(ctx, s, &batch, "SubscriptionsStore")
		cancel()
		if err == nil {
			b.awaitRouted(routed)
		} else {
			b.cancelWait(routed)
		}
		if err != nil {
			b.storageError("SubscriptionsStore", s.id, err)
			b.withdraw(s, granted, existed, prev)
			for _, i := range grantedIdx {
				codes[i] = packet.UnspecifiedError
			}
			granted = nil
		}
	}
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
		// subscription, 2 never. Shared subscriptions get no retained
		// messages [MQTT 5.0 4.8.2].
		if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed[i]) || strings.HasPrefix(sub.Filter, "$share/") {
			continue
		}
		b.sendRetained(s, sub)
		b.sendSys(s, sub)
	}
	return true
}

// withdraw undoes subscriptions made effective by a SUBSCRIBE that failed: a
// replaced subscription gets its previous options back, a new one is removed.
func (b *Broker) withdraw(s *session, granted []persistence.Subscription, existed []bool, prev []persistence.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sub := range granted {
		if existed[i] {
			s.subs[sub.Filter] = prev[i]
		} else if cur, ok := s.subs[sub.Filter]; ok && cur == sub {
			delete(s.subs, sub.Filter)
			b.subs.remove(sub.Filter, s)
		}
	}
}

// checkFilter validates a SUBSCRIBE's topic filter against the specification and
// the features the broker offers; ok is false with the reason code for the
// SUBACK otherwise.
func (b *Broker) checkFilter(filter string) (packet.ReasonCode, bool) {
	inner := filter
	if strings.HasPrefix(filter, "$share/") {
		_, f, ok := persistence.SplitSharedFilter(filter)
		if !ok {
			return packet.TopicFilterInvalid, false // [MQTT-4.8.2-1], [MQTT-4.8.2-2]
		}
		if b.limits.SharedSubUnavailable {
			return packet.SharedSubNotSupported, false
		}
		inner = f
	}
	if err := persistence.ValidFilter(inner); err != nil {
		return packet.TopicFilterInvalid, false
	}
	if b.limits.WildcardSubUnavailable && strings.ContainsAny(inner, "+#") {
		return packet.WildcardSubNotSupported, false
	}
	return packet.Success, true
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
		var batch persistence.Batch
		for _, f := range filters {
			batch.SubscriptionDelete(s.id, f)
		}
		s.mu.Lock()
		b.announceSubs(s, &batch, false)
		s.mu.Unlock()
		ctx, cancel := b.storeCtx()
		_, err := b.applyOwned(ctx, s, &batch, "SubscriptionsDelete")
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
