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

// BenchmarkPublishPipelined sends QoS 1 publishes in bursts of 16 (one write) and
// then reads their 16 PUBACKs, through the broker to one online persistent
// subscriber on the in-memory store; per message. It shows what answering a
// burst costs: the writer coalesces whatever is queued when it wakes into one
// write(2) (measured with perf: about 5k broker writes for 64k packets).
func BenchmarkPublishPipelined(b *testing.B) {
	e := newEnv(b, storeKinds()[0], broker.Options{Limits: broker.Limits{ReceiveMaximum: 64}})
	sub := dialRaw(b, e.addr, packet.Version5)
	sub.connect(&packet.Connect{ClientID: "bsub", Properties: packet.Properties{SessionExpiry: u32(3600)}})
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "bench/#", QoS: 1}}})
	sub.must()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			p, err := sub.read()
			if err != nil {
				return
			}
			if pub, ok := p.(*packet.Publish); ok {
				ack, _ := packet.Encode(nil, &packet.Puback{PacketID: pub.PacketID}, packet.Version5)
				sub.nc.Write(ack)
			}
		}
	}()
	pub := dialRaw(b, e.addr, packet.Version5)
	pub.connect(&packet.Connect{ClientID: "bpub", CleanStart: true})
	payload := make([]byte, 256)
	const burst = 16
	var buf []byte
	b.ResetTimer()
	for i := 0; i < b.N; i += burst {
		buf = buf[:0]
		for j := range burst {
			buf, _ = packet.Encode(buf, &packet.Publish{Topic: "bench/x", QoS: 1, PacketID: uint16(j + 1), Payload: payload}, packet.Version5)
		}
		pub.write(buf)
		for range burst {
			if _, ok := pub.must().(*packet.Puback); !ok {
				b.Fatal("no PUBACK")
			}
		}
	}
	b.StopTimer()
	pub.nc.Close()
	sub.nc.Close()
	wg.Wait()
}
