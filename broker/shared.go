package broker

// Shared subscriptions ("$share/group/filter", MQTT 5.0 4.8.2; also accepted from
// 3.1.1 clients): each message matching a group goes to one member, chosen by
// pickMember (members take turns; one that can take the message at once comes
// before one that would have to queue it, and an online one before an offline
// one). What happens to a member's unacknowledged messages when it leaves:
//
//   - A member whose session outlives its connection keeps them: they are
//     stored in its session, and redelivered when it reconnects (the
//     specification's "wait for the client to reconnect"). If that session
//     expires first, they end with it.
//   - A member whose session ends with its connection hands them on: every
//     message it got through a shared subscription and had not acknowledged
//     (queued, or in flight without a PUBREC) goes to another member of the
//     group, as a new message; if no member is left it is dropped. The member
//     may have received it already, so another member can get a second copy,
//     which QoS 1 allows; a QoS 2 message PUBREC'd by the leaving member is
//     not handed on.

// handoff is a message a leaving member hands on to its group.
type handoff struct {
	g *shareGroup
	m *wireMsg
}

// takeShared removes from s, which is going away, the messages it got through
// shared subscriptions and did not acknowledge. Caller holds s.mu.
func (s *session) takeShared() []handoff {
	var out []handoff
	for _, f := range s.committedFlights() {
		if f.share != nil && !f.rel && f.msg != nil && f.qos > 0 {
			out = append(out, handoff{f.share, f.msg})
		}
	}
	for _, q := range s.memQueue {
		if q.share != nil {
			out = append(out, handoff{q.share, q.m})
		}
	}
	return out
}

// handOn routes messages a leaving member (from) gave up to other members of
// their groups.
func (b *Broker) handOn(from *session, hs []handoff) {
	for _, h := range hs {
		pub, err := h.m.publish()
		if err != nil {
			b.stats.dropped.Add(1)
			continue
		}
		b.subs.mu.RLock()
		members := h.g.members
		b.subs.mu.RUnlock()
		t, ok := b.pickMember(h.g, members, h.m.qos, from)
		if !ok {
			b.stats.dropped.Add(1)
			b.log.Info("broker: shared subscription message dropped: no member left", "group", h.g.key)
			continue
		}
		if rc := b.fanOut(pub, h.m.expireAt, []target{t}, nil); rc != 0 {
			b.stats.dropped.Add(1)
		}
	}
}
