package broker_test

import (
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

// TestPublishRunInOrder writes 40 QoS 1 PUBLISH packets in one write, so that the
// broker routes them as runs (publish_run.go): every PUBACK comes back in order and
// the persistent subscriber (3.1.1, window 32, so some wait in its queue) gets every
// message once, in order.
func TestPublishRunInOrder(t *testing.T) {
	for _, k := range storeKinds()[:2] { // mem and bolt: with and without a durable commit
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k, broker.Options{})
			sub := dialRaw(t, e.addr, packet.Version311)
			sub.connect(&packet.Connect{ClientID: "runsub"})
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "run/#", QoS: 1}}})
			sub.must()
			pub := dialRaw(t, e.addr, packet.Version5)
			pub.connect(&packet.Connect{ClientID: "runpub", CleanStart: true})
			const n = 40
			var buf []byte
			for i := 1; i <= n; i++ {
				buf, _ = packet.Encode(buf, &packet.Publish{Topic: "run/x", QoS: 1, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))}, packet.Version5)
			}
			pub.write(buf)
			for i := 1; i <= n; i++ {
				ack, ok := pub.must().(*packet.Puback)
				if !ok || ack.PacketID != uint16(i) || ack.ReasonCode != packet.Success {
					t.Fatalf("answer %d: %#v, want PUBACK %d", i, ack, i)
				}
			}
			for i := 1; i <= n; i++ {
				p, ok := sub.must().(*packet.Publish)
				if !ok || string(p.Payload) != fmt.Sprint(i) {
					t.Fatalf("delivery %d: %#v", i, p)
				}
				sub.send(&packet.Puback{PacketID: p.PacketID})
			}
		})
	}
}

// TestPublishRunEndsAtBadPacket: a run whose fourth PUBLISH has an invalid topic
// name is routed and acknowledged up to it, then the connection ends with 0x90.
func TestPublishRunEndsAtBadPacket(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{})
	pub := dialRaw(t, e.addr, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "runbad", CleanStart: true})
	var buf []byte
	for i := 1; i <= 3; i++ {
		buf, _ = packet.Encode(buf, &packet.Publish{Topic: "run/ok", QoS: 1, PacketID: uint16(i)}, packet.Version5)
	}
	buf, _ = packet.Encode(buf, &packet.Publish{Topic: "run/+", QoS: 1, PacketID: 4}, packet.Version5)
	pub.write(buf)
	for i := 1; i <= 3; i++ {
		if ack, ok := pub.must().(*packet.Puback); !ok || ack.PacketID != uint16(i) {
			t.Fatalf("answer %d: %#v, want PUBACK %d", i, ack, i)
		}
	}
	if rc := pub.closed(); rc != packet.TopicNameInvalid {
		t.Fatalf("connection ended with %v, want %v", rc, packet.TopicNameInvalid)
	}
}
