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
	b := c.b
	s := c.sess
	v5 := c.version == packet.Version5
	if p.Properties.TopicAlias != nil && !c.resolveAlias(p) {
		return false
	}
	if p.QoS > b.limits.maxQoS() {
		b.log.Info("broker: PUBLISH above the maximum QoS; closing connection", "client", c.info.ID, "qos", p.QoS)
		c.close(dispLost, packet.QoSNotSupported)
		return false
	}
	if p.Retain && b.limits.RetainUnavailable {
		b.log.Info("broker: retained PUBLISH while retain is unavailable; closing connection", "client", c.info.ID)
		c.close(dispLost, packet.RetainNotSupported)
		return false
	}
	if err := persistence.ValidTopic(p.Topic); err != nil {
		b.log.Info("broker: invalid topic name; closing connection", "client", c.info.ID, "err", err)
		c.close(dispLost, packet.TopicNameInvalid)
		return false
	}
	if v5 && len(p.Properties.SubscriptionIDs) > 0 {
		c.protocolError("PUBLISH from a client with a subscription identifier") // [MQTT-3.3.4-6]
		return false
	}
	if rt := p.Properties.ResponseTopic; rt != "" && persistence.ValidTopic(rt) != nil {
		c.protocolError("Response Topic with wildcards") // MQTT 5.0 3.3.2.3.5
		return false
	}
	if p.QoS == 2 {
		s.mu.Lock()
		_, dup := s.incoming[p.PacketID]
		n := len(s.incoming)
		s.mu.Unlock()
		if dup {
			// Already accepted; the client did not get our PUBREC.
			return c.sendPacket(&packet.Pubrec{PacketID: p.PacketID})
		}
		if n >= b.limits.ReceiveMaximum {
			c.close(dispLost, packet.ReceiveMaximumExceeded)
			return false
		}
	}
	b.stats.in.Add(1)
	rc := packet.Success
	if isSys(p.Topic) {
		b.log.Info("broker: client may not publish to $SYS", "client", c.info.ID, "topic", p.Topic)
		rc = packet.NotAuthorized
	} else if err := b.authorizePublish(c.ctx, c.info, p.Topic, p.QoS, p.Retain); err != nil {
		b.log.Info("broker: publish not authorized", "client", c.info.ID, "topic", p.Topic, "err", err)
		rc = packet.NotAuthorized
	}
	var mark *incomingMark
	pid := p.PacketID
	if rc == packet.Success {
		// p owns its memory (ReadPacket allocates each packet's body), so it
		// becomes the routed message without a copy.
		msg := p
		msg.Dup, msg.PacketID = false, 0
		msg.Properties.SubscriptionIDs = nil
		msg.Properties.TopicAlias = nil
		var expireAt time.Time
		if me := msg.Properties.MessageExpiry; me != nil {
			expireAt = b.now().Add(time.Duration(*me) * time.Second)
		}
		if p.QoS == 2 {
			mark = &incomingMark{s: s, pid: pid}
		}
		rc = b.publish(s.id, msg, expireAt, mark)
	}
	storageFailed := rc == packet.UnspecifiedError
	switch p.QoS {
	case 0:
		return true
	case 1:
		if storageFailed && !v5 {
			// 3.1.1 has no negative PUBACK: closing without one makes the
			// client send the message again on its next connection.
			c.close(dispLost, 0)
			return false
		}
		return c.sendPacket(&packet.Puback{PacketID: pid, ReasonCode: rc})
	default:
		if storageFailed && !v5 {
			c.close(dispLost, 0)
			return false
		}
		return c.sendPacket(&packet.Pubrec{PacketID: pid, ReasonCode: rc})
	}
}

// resolveAlias applies a 5.0 client's topic alias to p (MQTT 5.0 3.3.2.3.4): a
// topic with an alias sets it, an empty topic takes the alias's topic. It closes
// the connection (0x94 for an alias out of range, 0x82 for an unknown one) and
// reports false when the alias is not acceptable.
func (c *conn) resolveAlias(p *packet.Publish) bool {
	a := *p.Properties.TopicAlias
	if c.version != packet.Version5 || a == 0 || int(a) > c.b.limits.TopicAliasMaximum {
		c.close(dispLost, packet.TopicAliasInvalid)
		return false
	}
	if p.Topic != "" {
		if c.aliasIn == nil {
			c.aliasIn = map[uint16]string{}
		}
		// A copy: the topic shares the packet's whole body, which the alias
		// must not keep alive.
		c.aliasIn[a] = strings.Clone(p.Topic)
		return true
	}
	t, ok := c.aliasIn[a]
	if !ok {
		c.protocolError("unknown topic alias")
		return false
	}
	p.Topic = t
	return true
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
