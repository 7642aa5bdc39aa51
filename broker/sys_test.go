package broker_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

func TestSys(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{SysInterval: 50 * time.Millisecond})
	all := dialV5(t, e.addr, &paho.Connect{ClientID: "all", CleanStart: true})
	all.sub(t, paho.SubscribeOptions{Topic: "#", QoS: 0})
	s := dialV5(t, e.addr, &paho.Connect{ClientID: "sys", CleanStart: true})
	s.sub(t, paho.SubscribeOptions{Topic: "$SYS/broker/#", QoS: 0})
	// The current values come at once, flagged retained.
	seen := map[string]string{}
	for len(seen) < 13 {
		m := s.recv(t)
		if m.Retain {
			seen[m.Topic] = string(m.Payload)
		}
	}
	if seen["$SYS/broker/clients/connected"] != "2" || seen["$SYS/broker/version"] == "" {
		t.Fatalf("snapshot: %v", seen)
	}
	v3 := dialV3(t, e.addr, "v3", true)
	v3.sub(t, "$SYS/broker/clients/connected", 0)
	if m := v3.recv(t); !m.Retained() || string(m.Payload()) != "3" {
		t.Fatalf("3.1.1 snapshot: %q retained=%v", m.Payload(), m.Retained())
	}
	p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
	p.pub(t, &paho.Publish{Topic: "x/y", QoS: 1, Payload: []byte("m")})
	// Clients cannot publish to $SYS.
	if r := p.pub(t, &paho.Publish{Topic: "$SYS/broker/version", QoS: 1, Payload: []byte("fake")}); r.ReasonCode != byte(packet.NotAuthorized) {
		t.Fatalf("$SYS publish: %#x", r.ReasonCode)
	}
	v3.pub(t, "$SYS/broker/clients/connected", 1, false, "fake") // dropped
	// The periodic publication counts the message.
	deadline := time.After(wait)
	for received := 0; received < 1; {
		select {
		case m := <-s.msgs:
			if m.Topic == "$SYS/broker/messages/received" && !m.Retain {
				received, _ = strconv.Atoi(string(m.Payload))
			}
			if m.Topic == "$SYS/broker/version" && string(m.Payload) == "fake" {
				t.Fatal("a client's $SYS publish was delivered")
			}
		case <-deadline:
			t.Fatal("no periodic $SYS/broker/messages/received counting the message")
		}
	}
	for range 3 { // a few more periods: nothing fake arrives
		if m := v3.recv(t); string(m.Payload()) == "fake" {
			t.Fatal("a client's $SYS publish was delivered")
		}
	}
	// "#" does not match $SYS topics: the first message is the live one.
	if m := all.recv(t); m.Topic != "x/y" {
		t.Fatalf("'#' subscriber got %q", m.Topic)
	}
}
