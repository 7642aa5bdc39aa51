package tool_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// wait bounds every network read of these tests.
const wait = 10 * time.Second

// rawClient speaks MQTT through the broker's packet codec, so a test can leave
// packets unacknowledged (in flight) or a QoS 2 exchange unfinished.
type rawClient struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
	v byte
}

func dialRaw(t testing.TB, addr string, cp *packet.Connect) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rc := &rawClient{t: t, c: c, r: bufio.NewReader(c), v: cp.ProtocolVersion}
	rc.send(cp)
	ack, ok := rc.read().(*packet.Connack)
	if !ok || ack.ReasonCode != 0 {
		t.Fatalf("connect %q: %#v", cp.ClientID, ack)
	}
	return rc
}

func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	b, err := packet.Encode(nil, p, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read() packet.Packet {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(wait))
	p, err := packet.ReadPacket(c.r, c.v, 1<<20)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// expect reads until a packet of type T arrives (skipping others) and returns it.
func expect[T packet.Packet](c *rawClient) T {
	c.t.Helper()
	for {
		if p, ok := c.read().(T); ok {
			return p
		}
	}
}

func u32(v uint32) *uint32 { return &v }

// Layout is what buildBrokerStore puts in a store.
const (
	queuedMsgs   = 6 // QoS 1 and 2 messages queued for the offline session "queued"
	inflightMsgs = 3 // QoS 1 messages sent to "inflight" and never acknowledged
	qos0Msgs     = 4 // QoS 0 packets appended through the SDK (the broker never queues QoS 0)
	retainedMsgs = 2
)

// buildBrokerStore runs the real broker on st and leaves in it every kind of
// record: persistent sessions (3.1.1 and 5.0) with subscriptions (options and
// identifiers included), queued QoS 1/2 messages, unacknowledged in-flight
// messages, an unfinished incoming QoS 2 exchange, a will with its delay and
// deadlines, session expiry deadlines and retained messages. QoS 0 packets, which
// the broker never stores, are appended through the SDK. The broker is shut down
// before it returns; st stays open.
func buildBrokerStore(t testing.TB, st *persistence.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.New(ctx, broker.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Serve(ln) }()
	shut := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		if err := b.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	addr := ln.Addr().String()

	// A 5.0 session that goes offline with subscriptions and an expiry interval.
	q := dialRaw(t, addr, &packet.Connect{ProtocolVersion: 5, ClientID: "queued", KeepAlive: 60,
		Properties: packet.Properties{SessionExpiry: u32(3600)}})
	q.send(&packet.Subscribe{PacketID: 1, Properties: packet.Properties{SubscriptionIDs: []uint32{7}},
		Subscriptions: []packet.SubscribeOption{{Filter: "q/#", QoS: 2, NoLocal: true, RetainHandling: 1}, {Filter: "r/+", QoS: 1, RetainAsPublished: true}}})
	expect[*packet.Suback](q)
	q.send(&packet.Disconnect{})
	_ = q.c.Close()
	offline := func(connected int64) { // the broker has finished with the closed connection
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for b.Stats().Connected != connected {
			if time.Now().After(deadline) {
				t.Fatalf("still %d clients connected after 30s, want %d", b.Stats().Connected, connected)
			}
			time.Sleep(time.Millisecond)
		}
	}
	offline(0) // "queued" is offline before anything is published to it

	// A 3.1.1 persistent session that receives QoS 1 messages and never acknowledges.
	f := dialRaw(t, addr, &packet.Connect{ProtocolVersion: 4, ClientID: "inflight", KeepAlive: 60})
	f.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "f/#", QoS: 1}}})
	expect[*packet.Suback](f)

	// A 5.0 session with a delayed will whose connection drops without DISCONNECT.
	w := dialRaw(t, addr, &packet.Connect{ProtocolVersion: 5, ClientID: "willer", KeepAlive: 60,
		Properties: packet.Properties{SessionExpiry: u32(7200)},
		Will:       &packet.Will{Topic: "wills/willer", Payload: []byte("gone"), QoS: 1, Properties: packet.Properties{WillDelay: u32(600)}}})
	w.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "z", QoS: 0}}})
	expect[*packet.Suback](w)
	_ = w.c.Close()

	// A 3.1.1 persistent publisher that leaves a QoS 2 exchange unreleased.
	p2 := dialRaw(t, addr, &packet.Connect{ProtocolVersion: 4, ClientID: "incoming", KeepAlive: 60})
	p2.send(&packet.Publish{QoS: 2, PacketID: 99, Topic: "x/y", Payload: []byte("unreleased")})
	expect[*packet.Pubrec](p2)
	_ = p2.c.Close()

	// A clean publisher: queued, in-flight and retained messages.
	pub := dialRaw(t, addr, &packet.Connect{ProtocolVersion: 5, ClientID: "pub", CleanStart: true, KeepAlive: 60})
	id := uint16(1)
	publish := func(topic string, qos byte, retain bool, payload string) {
		pub.send(&packet.Publish{QoS: qos, Retain: retain, PacketID: id, Topic: topic, Payload: []byte(payload),
			Properties: packet.Properties{MessageExpiry: u32(86400)}})
		if qos == 1 {
			expect[*packet.Puback](pub)
		} else {
			rec := expect[*packet.Pubrec](pub)
			pub.send(&packet.Pubrel{PacketID: rec.PacketID})
			expect[*packet.Pubcomp](pub)
		}
		id++
	}
	for i := range queuedMsgs {
		publish(fmt.Sprintf("q/%d", i), byte(1+i%2), false, fmt.Sprintf("queued %d", i))
	}
	for i := range inflightMsgs {
		publish(fmt.Sprintf("f/%d", i), 1, false, fmt.Sprintf("in flight %d", i))
	}
	for i := range inflightMsgs {
		if p := expect[*packet.Publish](f); p.Topic != fmt.Sprintf("f/%d", i) {
			t.Fatalf("inflight got %q", p.Topic)
		}
	}
	publish("ret/a", 1, true, "retained a")
	publish("ret/b", 2, true, "retained b")
	_ = f.c.Close()
	_ = pub.c.Close()
	shut()

	sess := st.Sessions()
	for i := range qos0Msgs {
		data, err := packet.Encode(nil, &packet.Publish{Topic: "q/zero", Payload: fmt.Appendf(nil, "qos0 %d", i)}, 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sess.PacketAppend(ctx, "queued", persistence.ClassQoS0, &persistence.PersistedPacket{ProtocolVersion: 5, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
}
