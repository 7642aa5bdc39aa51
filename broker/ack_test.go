package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
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
