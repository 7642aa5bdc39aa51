package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

// eachFastStore runs f on the in-memory and the bolt store: the features tested
// with it do not depend on the driver beyond what the other tests cover.
func eachFastStore(t *testing.T, f func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds()[:2] {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

// member is one receiver of a share group, whatever its client library.
type member struct {
	name string
	recv func() (string, bool) // next payload, false on timeout
}

func v5member(name string, c *v5client) member {
	return member{name, func() (string, bool) {
		select {
		case m := <-c.msgs:
			return string(m.Payload), true
		case <-time.After(wait):
			return "", false
		}
	}}
}

func v3member(name string, c *v3client) member {
	return member{name, func() (string, bool) {
		select {
		case m := <-c.msgs:
			return string(m.Payload()), true
		case <-time.After(wait):
			return "", false
		}
	}}
}

// collectShared reads the members until every payload in want arrived, failing
// on a duplicate; then it publishes one marker per member (members take turns,
// so each gets one) and reads each member up to its marker, so a late duplicate
// is caught too. It returns how many messages each member got.
func collectShared(t *testing.T, members []member, want []string, publish func(payload string)) map[string]int {
	t.Helper()
	pending := map[string]bool{}
	for _, w := range want {
		pending[w] = true
	}
	per := map[string]int{}
	got := make(chan [2]string, 64)
	stop := make(chan struct{})
	done := make(chan struct{}, len(members))
	for _, m := range members {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				p, ok := m.recv()
				if !ok {
					return
				}
				select {
				case got <- [2]string{m.name, p}:
				case <-stop:
					return
				}
				if len(p) > 6 && p[:6] == "marker" {
					return
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop) })
	deadline := time.After(3 * wait)
	markers := 0
	for len(pending) > 0 || markers < len(members) {
		select {
		case g := <-got:
			name, p := g[0], g[1]
			if len(p) > 6 && p[:6] == "marker" {
				markers++
				continue
			}
			if !pending[p] {
				t.Fatalf("member %s got %q, which is a duplicate or unexpected", name, p)
			}
			delete(pending, p)
			per[name]++
			if len(pending) == 0 {
				for i := range members {
					publish(fmt.Sprint("marker", i))
				}
			}
		case <-deadline:
			t.Fatalf("share group: %d messages missing (%v), %d markers of %d", len(pending), pending, markers, len(members))
		}
	}
	return per
}

func TestSharedSubscriptions(t *testing.T) {
	eachFastStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		p := dialV3(t, e.addr, "p", true)
		p.pub(t, "sh/retained", 1, true, "retained")

		a := dialV5(t, e.addr, &paho.Connect{ClientID: "a", CleanStart: true})
		a.sub(t, paho.SubscribeOptions{Topic: "$share/g/sh/#", QoS: 1})
		b5 := dialV5(t, e.addr, &paho.Connect{ClientID: "b", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		b5.sub(t, paho.SubscribeOptions{Topic: "$share/g/sh/#", QoS: 1})
		c3 := dialV3(t, e.addr, "c3", true) // accepted from 3.1.1 too
		c3.sub(t, "$share/g/sh/#", 1)
		all := dialV3(t, e.addr, "all", true)
		all.sub(t, "sh/#", 1)
		if m := all.recv(t); string(m.Payload()) != "retained" {
			t.Fatalf("non-shared subscriber: %q, want the retained message", m.Payload())
		}

		const n = 30
		var want []string
		for i := range n {
			want = append(want, fmt.Sprint(i))
			p.pub(t, "sh/x", 1, false, fmt.Sprint(i))
		}
		for i := range n {
			if m := all.recv(t); string(m.Payload()) != fmt.Sprint(i) {
				t.Fatalf("non-shared subscriber: message %d is %q", i, m.Payload())
			}
		}
		// No retained message on the shared subscriptions: the first thing
		// each member sees is a live message.
		per := collectShared(t, []member{v5member("a", a), v5member("b", b5), v3member("c3", c3)}, want,
			func(s string) { p.pub(t, "sh/x", 1, false, s) })
		// Members take turns; a turn skips a member that cannot take the message
		// at once (a connection whose delivery has not started yet, on a loaded
		// machine), so a share may be off by a few.
		total := 0
		for _, name := range []string{"a", "b", "c3"} {
			total += per[name]
			if d := per[name] - n/3; d < -3 || d > 3 {
				t.Errorf("member %s got %d messages, want %d±3 (members take turns)", name, per[name], n/3)
			}
		}
		if total != n {
			t.Errorf("the members got %d messages in all, want %d", total, n)
		}
	})
}

// TestSharedSubscriptionRestart: persistent members' shares survive a restart,
// and messages for a group whose members are all offline wait in their sessions.
func TestSharedSubscriptionRestart(t *testing.T) {
	eachFastStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		m3 := dialV3(t, e.addr, "m3", false)
		m3.sub(t, "$share/p/rs/#", 1)
		m3.close()
		m5 := dialV5(t, e.addr, &paho.Connect{ClientID: "m5", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		m5.sub(t, paho.SubscribeOptions{Topic: "$share/p/rs/#", QoS: 2})
		m5.c.Disconnect(&paho.Disconnect{})
		e.connected(0)
		e.restart()
		if got := e.b.Restored().Subscriptions; got != 2 {
			t.Fatalf("restored %d subscriptions, want 2", got)
		}
		p := dialV3(t, e.addr, "p", true)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprint(i))
			p.pub(t, "rs/x", 1, false, fmt.Sprint(i))
		}
		m3 = dialV3(t, e.addr, "m3", false)
		m5 = dialV5(t, e.addr, &paho.Connect{ClientID: "m5", CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		if !m5.ack.SessionPresent {
			t.Fatal("session not present")
		}
		per := collectShared(t, []member{v3member("m3", m3), v5member("m5", m5)}, want,
			func(s string) { p.pub(t, "rs/x", 1, false, s) })
		if per["m3"] == 0 || per["m5"] == 0 {
			t.Errorf("offline members did not take turns: %v", per)
		}
	})
}

// TestSharedSubscriptionHandOn: a member whose session ends with its connection
// hands the messages it did not acknowledge to another member.
func TestSharedSubscriptionHandOn(t *testing.T) {
	eachFastStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		// The raw member never acknowledges.
		raw := dialRaw(t, e.addr, packet.Version5)
		raw.connect(&packet.Connect{ClientID: "lazy", CleanStart: true})
		raw.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "$share/h/ho/#", QoS: 1}}})
		if sa, ok := raw.must().(*packet.Suback); !ok || sa.ReasonCodes[0] != packet.GrantedQoS1 {
			t.Fatalf("SUBACK %+v", sa)
		}
		good := dialV5(t, e.addr, &paho.Connect{ClientID: "good", CleanStart: true})
		good.sub(t, paho.SubscribeOptions{Topic: "$share/h/ho/#", QoS: 1})
		p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
		want := map[string]bool{}
		for i := range 6 {
			want[fmt.Sprint(i)] = true
			p.pub(t, &paho.Publish{Topic: "ho/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		}
		lazyGot := 0
		for lazyGot < 3 {
			if _, ok := raw.must().(*packet.Publish); ok {
				lazyGot++
			}
		}
		raw.nc.Close()
		for len(want) > 0 {
			m := good.recv(t)
			if !want[string(m.Payload)] {
				t.Fatalf("unexpected or duplicate %q", m.Payload)
			}
			delete(want, string(m.Payload))
		}
	})
}

func TestSharedSubscriptionErrors(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{})
	r := dialRaw(t, e.addr, packet.Version5)
	r.connect(&packet.Connect{ClientID: "x", CleanStart: true})
	r.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{
		{Filter: "$share/g", QoS: 1}, {Filter: "$share//x", QoS: 1}, {Filter: "$share/g+/x", QoS: 1}, {Filter: "$share/g/#", QoS: 1},
	}})
	sa, ok := r.must().(*packet.Suback)
	want := []packet.ReasonCode{packet.TopicFilterInvalid, packet.TopicFilterInvalid, packet.TopicFilterInvalid, packet.GrantedQoS1}
	if !ok || fmt.Sprint(sa.ReasonCodes) != fmt.Sprint(want) {
		t.Fatalf("SUBACK %+v, want %v", sa, want)
	}
	r.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.SubscribeOption{{Filter: "$share/g/y", QoS: 1, NoLocal: true}}})
	if rc := r.closed(); rc != packet.ProtocolError {
		t.Fatalf("No Local on a shared subscription: DISCONNECT %v, want protocol error", rc)
	}
}

// TestSharedSubscriptionSkipsBusyMember: a member whose in-flight window is full
// is passed over while another member can take messages at once.
func TestSharedSubscriptionSkipsBusyMember(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{})
	// The raw member allows two messages in flight and never acknowledges.
	raw := dialRaw(t, e.addr, packet.Version5)
	raw.connect(&packet.Connect{ClientID: "slow", CleanStart: true, Properties: packet.Properties{ReceiveMaximum: u16(2)}})
	raw.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "$share/b/busy/#", QoS: 1}}})
	raw.must()
	fast := dialV5(t, e.addr, &paho.Connect{ClientID: "fast", CleanStart: true})
	fast.sub(t, paho.SubscribeOptions{Topic: "$share/b/busy/#", QoS: 1})
	p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
	const n = 12
	for i := range n {
		p.pub(t, &paho.Publish{Topic: "busy/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	// With plain turns the slow member would hold half; it holds its window.
	for range 2 {
		if _, ok := raw.must().(*packet.Publish); !ok {
			t.Fatal("slow member: no PUBLISH")
		}
	}
	for i := range n - 2 {
		if m := fast.recv(t); m == nil {
			t.Fatalf("fast member: message %d missing", i)
		}
	}
}
