package broker

import (
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// handlePublish handles a client's PUBLISH at any QoS. The acknowledgement (PUBACK
// or PUBREC) is sent only after the message is durably queued or put in flight for
// every persistent subscriber that matched, and for QoS 2 after the packet id is
// recorded in ClassIncoming in the same commit, so a retransmission after a crash
// is recognised and not delivered twice.
func (c *conn) handlePublish(p *packet.Publish) bool {
	ps := [1]*packet.Publish{p}
	return c.handlePublishes(ps[:])
}

// handlePublishes is handlePublish for consecutive PUBLISH packets of the
// client, handled in order with one fan-out commit for all of them, then
// acknowledged in order. A packet that ends the connection ends the run: the
// packets before it are routed and acknowledged first, as if handled one by one.
func (c *conn) handlePublishes(ps []*packet.Publish) bool {
	b := c.b
	s := c.sess
	ins := c.pubIns[:0]
	acks := c.pubAcks[:0]
	var refused *refusal
	for _, p := range ps {
		a, ok := c.checkPublish(p)
		if !ok {
			refused = a.refused
			break
		}
		if a.route {
			// p owns its memory (ReadPacket allocates each packet's body), so it
			// becomes the routed message without a copy.
			msg := p
			msg.Dup, msg.PacketID = false, 0
			msg.Properties.SubscriptionIDs = nil
			msg.Properties.TopicAlias = nil
			in := fanIn{msg: msg}
			if me := msg.Properties.MessageExpiry; me != nil {
				in.expireAt = b.now().Add(time.Duration(*me) * time.Second)
			}
			if a.qos == 2 {
				in.mark = &incomingMark{s: s, pid: a.pid}
			}
			a.in = len(ins)
			ins = append(ins, in)
		}
		acks = append(acks, a)
	}
	if len(ins) > 0 {
		b.publishAll(s.id, ins)
	}
	ok := true
	for _, a := range acks {
		rc := a.rc
		if a.in >= 0 {
			rc = ins[a.in].rc
		}
		if ok = c.ackPublish(a, rc); !ok {
			break
		}
	}
	c.signalOut() // the PUBACKs, queued with hold set
	clear(ins)
	c.pubIns, c.pubAcks = ins[:0], acks[:0]
	if refused != nil {
		if refused.proto != "" {
			c.protocolError(refused.proto)
		} else {
			c.close(dispLost, refused.rc)
		}
		return false
	}
	return ok
}

// inAck is what handlePublishes answers one PUBLISH with.
type inAck struct {
	qos     byte
	pid     uint16
	rc      packet.ReasonCode // when not routed
	route   bool              // route the message; its outcome is ins[in].rc
	in      int
	refused *refusal
}

// refusal is a PUBLISH that ends the connection: with a protocol error (proto)
// or with reason code rc.
type refusal struct {
	rc    packet.ReasonCode
	proto string
}

// checkPublish checks p and decides what happens to it. ok is false when p ends
// the connection (a.refused says how).
func (c *conn) checkPublish(p *packet.Publish) (a inAck, ok bool) {
	b := c.b
	s := c.sess
	a = inAck{qos: p.QoS, pid: p.PacketID, in: -1}
	refuse := func(rc packet.ReasonCode, proto string) (inAck, bool) {
		a.refused = &refusal{rc: rc, proto: proto}
		return a, false
	}
	if p.Properties.TopicAlias != nil {
		if rc, proto := c.resolveAlias(p); rc != 0 || proto != "" {
			return refuse(rc, proto)
		}
	}
	if p.QoS > b.limits.maxQoS() {
		b.log.Info("broker: PUBLISH above the maximum QoS; closing connection", "client", c.info.ID, "qos", p.QoS)
		return refuse(packet.QoSNotSupported, "")
	}
	if p.Retain && b.limits.RetainUnavailable {
		b.log.Info("broker: retained PUBLISH while retain is unavailable; closing connection", "client", c.info.ID)
		return refuse(packet.RetainNotSupported, "")
	}
	if err := persistence.ValidTopic(p.Topic); err != nil {
		b.log.Info("broker: invalid topic name; closing connection", "client", c.info.ID, "err", err)
		return refuse(packet.TopicNameInvalid, "")
	}
	if c.version == packet.Version5 && len(p.Properties.SubscriptionIDs) > 0 {
		return refuse(0, "PUBLISH from a client with a subscription identifier") // [MQTT-3.3.4-6]
	}
	if rt := p.Properties.ResponseTopic; rt != "" && persistence.ValidTopic(rt) != nil {
		return refuse(0, "Response Topic with wildcards") // MQTT 5.0 3.3.2.3.5
	}
	if p.QoS == 2 {
		s.mu.Lock()
		_, dup := s.incoming[p.PacketID]
		n := len(s.incoming)
		s.mu.Unlock()
		if dup {
			// Already accepted; the client did not get our PUBREC.
			return a, true
		}
		if n >= b.limits.ReceiveMaximum {
			return refuse(packet.ReceiveMaximumExceeded, "")
		}
	}
	b.stats.in.Add(1)
	if isSys(p.Topic) {
		b.log.Info("broker: client may not publish to $SYS", "client", c.info.ID, "topic", p.Topic)
		a.rc = packet.NotAuthorized
	} else if err := b.authorizePublish(c.ctx, c.info, p.Topic, p.QoS, p.Retain); err != nil {
		b.log.Info("broker: publish not authorized", "client", c.info.ID, "topic", p.Topic, "err", err)
		a.rc = packet.NotAuthorized
	} else {
		a.route = true
	}
	return a, true
}

// ackPublish sends the acknowledgement of one PUBLISH whose outcome is rc, and
// reports whether the connection goes on.
func (c *conn) ackPublish(a inAck, rc packet.ReasonCode) bool {
	storageFailed := rc == packet.UnspecifiedError
	v5 := c.version == packet.Version5
	switch a.qos {
	case 0:
		return true
	case 1:
		if storageFailed && !v5 {
			// 3.1.1 has no negative PUBACK: closing without one makes the
			// client send the message again on its next connection.
			c.close(dispLost, 0)
			return false
		}
		if rc == packet.Success {
			return c.queueItem(outItem{ack: ackPuback, pid: a.pid}, false, true) // no Puback to allocate; handlePublishes signals
		}
		return c.sendPacket(&packet.Puback{PacketID: a.pid, ReasonCode: rc})
	default:
		if storageFailed && !v5 {
			c.close(dispLost, 0)
			return false
		}
		return c.sendPacket(&packet.Pubrec{PacketID: a.pid, ReasonCode: rc})
	}
}

// resolveAlias applies a 5.0 client's topic alias to p (MQTT 5.0 3.3.2.3.4): a
// topic with an alias sets it, an empty topic takes the alias's topic. When the
// alias is not acceptable it returns how the connection ends: 0x94 for an alias
// out of range, a protocol error (0x82) for an unknown one.
func (c *conn) resolveAlias(p *packet.Publish) (packet.ReasonCode, string) {
	a := *p.Properties.TopicAlias
	if c.version != packet.Version5 || a == 0 || int(a) > c.b.limits.TopicAliasMaximum {
		return packet.TopicAliasInvalid, ""
	}
	if p.Topic != "" {
		if c.aliasIn == nil {
			c.aliasIn = map[uint16]string{}
		}
		// A copy: the topic shares the packet's whole body, which the alias
		// must not keep alive.
		c.aliasIn[a] = strings.Clone(p.Topic)
		return 0, ""
	}
	t, ok := c.aliasIn[a]
	if !ok {
		return 0, "unknown topic alias"
	}
	p.Topic = t
	return 0, ""
}

// handlePubrel releases an inbound QoS 2 message: its packet id may be reused.
func (c *conn) handlePubrel(p *packet.Pubrel) bool {
	s := c.sess
	s.mu.Lock()
	seq, ok := s.incoming[p.PacketID]
	stored := s.stored
	s.mu.Unlock()
	if ok && stored {
		ctx, cancel := c.b.storeCtx()
		var batch persistence.Batch
		_, err := c.b.applyOwned(ctx, s, batch.PacketDelete(s.id, persistence.ClassIncoming, seq), "PacketDelete(Incoming)")
		cancel()
		if err != nil {
			c.b.storageError("PacketDelete(Incoming)", s.id, err)
			c.close(dispLost, packet.UnspecifiedError)
			return false
		}
	}
	s.mu.Lock()
	delete(s.incoming, p.PacketID)
	s.mu.Unlock()
	rc := packet.Success
	if !ok && c.version == packet.Version5 {
		rc = packet.PacketIDNotFound
	}
	return c.sendPacket(&packet.Pubcomp{PacketID: p.PacketID, ReasonCode: rc})
}

// incomingMark asks publish to record an inbound QoS 2 packet id in the
// publisher's session, in the same commit as the fan-out.
type incomingMark struct {
	s   *session
	pid uint16 // 0: no QoS 2 mark, only after
	// after, when set, holds writes for s committed in the fan-out's own batch
	// (a will's removal with its publication: cluster mode's exactly-once wills).
	after *persistence.Batch
	// fenced: the fan-out's batch carries s's fence (cluster mode).
	fenced bool
}

// storedPublish encodes pub the way the broker stores messages: as an MQTT 5.0
// PUBLISH, whatever the protocol of its subscriber, so that no property is lost;
// it is re-encoded for the connection when sent. A QoS 1/2 message not yet in
// flight has no packet id, so Data carries the placeholder id 1 and PacketID is 0.
func (b *Broker) storedPublish(pub *packet.Publish, expireAt time.Time) (*persistence.PersistedPacket, error) {
	q := *pub
	q.Dup = false
	if q.QoS > 0 && q.PacketID == 0 {
		q.PacketID = 1
	}
	data, err := packet.Encode(nil, &q, packet.Version5)
	if err != nil {
		return nil, err
	}
	return &persistence.PersistedPacket{
		PacketID: pub.PacketID, QoS: pub.QoS, ProtocolVersion: packet.Version5,
		ExpireAt: expireAt, Data: data,
	}, nil
}
