package broker_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

// BenchmarkPublishQoS1 publishes QoS 1 messages (256-byte payload) one at a time,
// each waiting for its PUBACK, through the broker to an online persistent
// subscriber that acknowledges everything: per message, one batch commit putting
// it in flight plus one delete on acknowledgement.
func BenchmarkPublishQoS1(b *testing.B) {
	for _, k := range storeKinds() {
		b.Run(k.name, func(b *testing.B) {
			benchPublish(b, k)
		})
	}
}

func benchPublish(b *testing.B, k storeKind) {
	e := newEnv(b, k, broker.Options{})
	sub := dialRaw(b, e.addr, packet.Version5)
	sub.connect(&packet.Connect{ClientID: "bsub", Properties: packet.Properties{SessionExpiry: u32(3600)}})
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "bench/#", QoS: 1}}})
	sub.must()
	done := make(chan int, 1)
	go func() {
		n := 0
		for {
			p, err := sub.read()
			if err != nil {
				done <- n
				return
			}
			if pub, ok := p.(*packet.Publish); ok {
				n++
				ack, _ := packet.Encode(nil, &packet.Puback{PacketID: pub.PacketID}, packet.Version5)
				sub.nc.Write(ack)
			}
		}
	}()
	pub := dialRaw(b, e.addr, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "bpub", CleanStart: true})
	payload := make([]byte, 256)
	b.ResetTimer()
	for i := range b.N {
		pub.send(&packet.Publish{Topic: "bench/x", QoS: 1, PacketID: uint16(i%65535 + 1), Payload: payload})
		if _, ok := pub.must().(*packet.Puback); !ok {
			b.Fatal("no PUBACK")
		}
	}
	b.StopTimer()
	pub.nc.Close()
	sub.nc.Close()
	<-done
}
