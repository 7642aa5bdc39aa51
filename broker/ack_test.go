package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// TestAcknowledgementsReachStore checks that acknowledgement deletes, which the
// broker batches instead of committing one per PUBACK, reach the store while the
// subscriber stays connected and nothing else is written, and that a graceful
// restart then redelivers nothing.
func TestAcknowledgementsReachStore(t *testing.T) {
	for _, k := range storeKinds() {
		if k.durable { // mem keeps nothing across the restart this test makes
			t.Run(k.name, func(t *testing.T) { testAcknowledgementsReachStore(t, k) })
		}
	}
}

func testAcknowledgementsReachStore(t *testing.T, k storeKind) {
	e := newEnv(t, k, broker.Options{})
	s := dialV3(t, e.addr, "acker", false)
	s.sub(t, "ack/#", 1)
	p := dialV3(t, e.addr, "ack-pub", true)
	const n = 200 // several in-flight windows, both straight in flight and from the queue
	for i := range n {
		p.pub(t, "ack/x", 1, false, fmt.Sprint(i))
	}
	for i := range n {
		if m := s.recv(t); string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.Payload())
		}
	}
	count := func(class persistence.PacketClass) uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := e.store.Sessions().PacketCount(ctx, "acker", class)
		if err != nil {
			t.Fatalf("PacketCount: %v", err)
		}
		return c
	}
	eventually(t, "every acknowledged message deleted from the store", func() bool {
		return count(persistence.ClassUnAck) == 0 && count(persistence.ClassQoS12) == 0
	})
	s.close()
	p.close()
	e.connected(0)
	e.restart()
	s = dialV3(t, e.addr, "acker", false)
	defer s.close()
	p = dialV3(t, e.addr, "ack-pub", true)
	defer p.close()
	p.pub(t, "ack/x", 1, false, "after restart")
	if m := s.recv(t); string(m.Payload()) != "after restart" || m.Duplicate() {
		t.Fatalf("after a graceful restart got %q (dup %v), want only the new message", m.Payload(), m.Duplicate())
	}
}

// TestRestoreWithUnflushedAcknowledgement builds the store a crash can leave behind
// now that acknowledgement deletes are batched: an acknowledged flight whose delete
// was not committed, and a newer flight that reused its packet id. The restored
// broker must keep the newer one (redelivered with DUP) and drop the older one.
func TestRestoreWithUnflushedAcknowledgement(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		s := dialV3(t, e.addr, "crashed-sub", false)
		s.sub(t, "crash/#", 1)
		s.close()
		e.connected(0)
		e.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, payload := range []string{"acknowledged before the crash", "in flight at the crash"} {
			data, err := packet.Encode(nil, &packet.Publish{Topic: "crash/x", QoS: 1, PacketID: 7, Payload: []byte(payload)}, packet.Version5)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.store.Sessions().PacketAppend(ctx, "crashed-sub", persistence.ClassUnAck,
				&persistence.PersistedPacket{PacketID: 7, QoS: 1, ProtocolVersion: packet.Version5, Data: data})
			if err != nil {
				t.Fatalf("PacketAppend: %v", err)
			}
		}
		e.start()
		s = dialV3(t, e.addr, "crashed-sub", false)
		defer s.close()
		if m := s.recv(t); string(m.Payload()) != "in flight at the crash" || !m.Duplicate() {
			t.Fatalf("first delivery %q (dup %v), want the newer in-flight message with DUP", m.Payload(), m.Duplicate())
		}
		p := dialV3(t, e.addr, "crash-pub", true)
		defer p.close()
		p.pub(t, "crash/x", 1, false, "after")
		if m := s.recv(t); string(m.Payload()) != "after" {
			t.Fatalf("then got %q, want the new message (the acknowledged one must not come back)", m.Payload())
		}
	})
}
