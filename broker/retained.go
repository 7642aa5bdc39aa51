package broker

import (
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// retain stores msg as the retained message of its topic, or deletes the retained
// message when the payload is empty [MQTT-3.3.1-6], before the publisher is
// acknowledged. The retained store is the only copy: nothing is cached.
func (b *Broker) retain(msg *packet.Publish, expireAt time.Time) packet.ReasonCode {
	ctx, cancel := b.storeCtx()
	defer cancel()
	if len(msg.Payload) == 0 {
		if err := b.ret.Delete(ctx, msg.Topic); err != nil {
			b.storageError("Retained.Delete", msg.Topic, err)
			return packet.UnspecifiedError
		}
		return packet.Success
	}
	pp, err := b.storedPublish(msg, expireAt)
	if err != nil {
		return packet.ImplementationSpecific
	}
	if err := b.ret.Put(ctx, msg.Topic, pp); err != nil {
		b.storageError("Retained.Put", msg.Topic, err)
		return packet.UnspecifiedError
	}
	return packet.Success
}

// sendRetained delivers the retained messages matching sub to s, with RETAIN set,
// through the normal path (so a stored session gets them durably in flight or
// queued). Expired retained messages are deleted instead.
func (b *Broker) sendRetained(s *session, sub persistence.Subscription) {
	type found struct {
		pub      *packet.Publish
		expireAt time.Time
	}
	var msgs []found
	var expired []string
	now := b.now()
	ctx, cancel := b.storeCtx()
	err := b.ret.LoadMatching(ctx, []string{sub.Filter}, func(m *persistence.RetainedMessage) error {
		if m.Packet.Expired(now) {
			expired = append(expired, m.Topic)
			return nil
		}
		pub, err := decodePublish(m.Packet)
		if err != nil {
			b.log.Error("broker: broken retained message skipped", "topic", m.Topic, "err", err)
			return nil
		}
		msgs = append(msgs, found{pub, m.Packet.ExpireAt})
		return nil
	})
	cancel()
	if err != nil {
		b.storageError("Retained.LoadMatching", s.id, err)
		return
	}
	for _, t := range expired {
		ctx, cancel := b.storeCtx()
		if err := b.ret.Delete(ctx, t); err != nil {
			b.storageError("Retained.Delete(expired)", t, err)
		}
		cancel()
	}
	for _, m := range msgs {
		m.pub.Retain = true
		m.pub.PacketID = 0
		t := target{s: s, qos: min(m.pub.QoS, sub.QoS), retain: true}
		if sub.ID != 0 {
			t.ids = []uint32{sub.ID}
		}
		b.fanOut(m.pub, m.expireAt, []target{t}, nil)
	}
}
