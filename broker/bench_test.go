package broker_test

import (
	"fmt"
	"sync"
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
			benchPublish(b, k, 1)
		})
	}
}

// BenchmarkPublishQoS1Fanout is BenchmarkPublishQoS1 with 8 persistent
// subscribers (4 MQTT 5.0, 4 MQTT 3.1.1) on the in-memory store: the cost of
// fanning one message out.
func BenchmarkPublishQoS1Fanout(b *testing.B) {
	benchPublish(b, storeKinds()[0], 8)
}

func benchPublish(b *testing.B, k storeKind, subs int) {
	e := newEnv(b, k, broker.Options{})
	var wg sync.WaitGroup
	var conns []*rawClient
	for i := range subs {
		v := packet.Version5
		if i%2 == 1 {
			v = packet.Version311
		}
		sub := dialRaw(b, e.addr, v)
		cp := &packet.Connect{ClientID: fmt.Sprint("bsub", i), Properties: packet.Properties{SessionExpiry: u32(3600)}}
		if v == packet.Version311 {
			cp = &packet.Connect{ClientID: fmt.Sprint("bsub", i)}
		}
		sub.connect(cp)
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "bench/#", QoS: 1}}})
		sub.must()
		conns = append(conns, sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := sub.read()
				if err != nil {
					return
				}
				if pub, ok := p.(*packet.Publish); ok {
					ack, _ := packet.Encode(nil, &packet.Puback{PacketID: pub.PacketID}, sub.v)
					sub.nc.Write(ack)
				}
			}
		}()
	}
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
	for _, c := range conns {
		c.nc.Close()
	}
	wg.Wait()
}
