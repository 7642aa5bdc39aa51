package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

func TestPubSubQoS(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		// 3.1.1 both ways, persistent and clean subscribers.
		s3 := dialV3(t, e.addr, "sub3", false)
		s3.sub(t, "q/#", 2)
		s3c := dialV3(t, e.addr, "sub3c", true)
		s3c.sub(t, "q/+/x", 1)
		p3 := dialV3(t, e.addr, "pub3", true)
		for qos := byte(0); qos <= 2; qos++ {
			p3.pub(t, fmt.Sprintf("q/%d/x", qos), qos, false, fmt.Sprintf("m%d", qos))
			m := s3.recv(t)
			if string(m.Payload()) != fmt.Sprintf("m%d", qos) || m.Qos() != qos || m.Duplicate() {
				t.Fatalf("3.1.1 sub: got %q qos %d dup %v, want m%d qos %d", m.Payload(), m.Qos(), m.Duplicate(), qos, qos)
			}
			m = s3c.recv(t)
			if string(m.Payload()) != fmt.Sprintf("m%d", qos) || m.Qos() != min(qos, 1) {
				t.Fatalf("clean sub: got %q qos %d", m.Payload(), m.Qos())
			}
		}
		// 5.0 both ways.
		s5 := dialV5(t, e.addr, &paho.Connect{ClientID: "sub5", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		s5.sub(t, paho.SubscribeOptions{Topic: "f/#", QoS: 2})
		p5 := dialV5(t, e.addr, &paho.Connect{ClientID: "pub5", CleanStart: true})
		for qos := byte(0); qos <= 2; qos++ {
			r := p5.pub(t, &paho.Publish{Topic: "f/a", QoS: qos, Payload: []byte{qos}})
			if qos > 0 && r.ReasonCode != 0 {
				t.Fatalf("publish QoS %d: reason %#x", qos, r.ReasonCode)
			}
			m := s5.recv(t)
			if m.QoS != qos || len(m.Payload) != 1 || m.Payload[0] != qos {
				t.Fatalf("5.0: got qos %d payload %v", m.QoS, m.Payload)
			}
		}
		// Across versions: 5.0 publisher, 3.1.1 subscriber.
		p5.pub(t, &paho.Publish{Topic: "q/5/x", QoS: 1, Payload: []byte("cross")})
		if m := s3.recv(t); string(m.Payload()) != "cross" {
			t.Fatalf("cross-version: %q", m.Payload())
		}
		s3c.recv(t)
	})
}

func TestRetained(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		p := dialV3(t, e.addr, "p", true)
		p.pub(t, "r/a", 1, true, "ra")
		p.pub(t, "r/b", 2, true, "rb")
		s := dialV3(t, e.addr, "s", true)
		s.sub(t, "r/a", 1)
		if m := s.recv(t); string(m.Payload()) != "ra" || !m.Retained() || m.Qos() != 1 {
			t.Fatalf("retained: %q retained=%v qos=%d", m.Payload(), m.Retained(), m.Qos())
		}
		// A live message is not flagged retained for an existing subscriber.
		p.pub(t, "r/a", 1, true, "ra2")
		if m := s.recv(t); string(m.Payload()) != "ra2" || m.Retained() {
			t.Fatalf("live: %q retained=%v", m.Payload(), m.Retained())
		}
		// An empty retained payload deletes.
		p.pub(t, "r/a", 0, true, "")
		s.recv(t) // the empty message itself is forwarded
		s2 := dialV3(t, e.addr, "s2", true)
		s2.sub(t, "r/#", 1)
		if m := s2.recv(t); string(m.Payload()) != "rb" {
			t.Fatalf("after delete: got %q, want only rb", m.Payload())
		}
		p.pub(t, "r/marker", 1, false, "marker")
		if m := s2.recv(t); string(m.Payload()) != "marker" {
			t.Fatalf("deleted retained message delivered: %q", m.Payload())
		}
	})
}

func TestOfflineQueue(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		s := dialV3(t, e.addr, "offline3", false)
		s.sub(t, "o/#", 2)
		s.close()
		s5 := dialV5(t, e.addr, &paho.Connect{ClientID: "offline5", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		s5.sub(t, paho.SubscribeOptions{Topic: "o/#", QoS: 1})
		s5.c.Disconnect(&paho.Disconnect{})
		p := dialV3(t, e.addr, "p", true)
		// QoS 0 first: its publish completes without an acknowledgement, and the
		// QoS 1/2 ones after it guarantee the broker processed it while offline.
		p.pub(t, "o/x", 0, false, "qos0-dropped-offline")
		const n = 100 // more than the in-flight window, so paging is exercised
		for i := range n {
			p.pub(t, "o/x", byte(1+i%2), false, fmt.Sprint(i))
		}
		s = dialV3(t, e.addr, "offline3", false)
		for i := range n {
			if m := s.recv(t); string(m.Payload()) != fmt.Sprint(i) {
				t.Fatalf("3.1.1 message %d: got %q", i, m.Payload())
			}
		}
		s5 = dialV5(t, e.addr, &paho.Connect{ClientID: "offline5", CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		if !s5.ack.SessionPresent {
			t.Fatal("5.0: session not present")
		}
		for i := range n {
			if m := s5.recv(t); string(m.Payload) != fmt.Sprint(i) || m.QoS != 1 {
				t.Fatalf("5.0 message %d: got %q qos %d", i, m.Payload, m.QoS)
			}
		}
	})
}

func TestWill(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		s := dialV3(t, e.addr, "watcher", true)
		s.sub(t, "will/#", 1)
		for _, v := range []byte{packet.Version311, packet.Version5} {
			r := dialRaw(t, e.addr, v)
			r.connect(&packet.Connect{ClientID: fmt.Sprint("w", v), CleanStart: true, KeepAlive: 30,
				Will: &packet.Will{Topic: fmt.Sprint("will/", v), QoS: 1, Payload: []byte("gone")}})
			r.nc.Close() // abnormal: the will goes out
			if m := s.recv(t); m.Topic() != fmt.Sprint("will/", v) || string(m.Payload()) != "gone" {
				t.Fatalf("will: %s %q", m.Topic(), m.Payload())
			}
		}
		// A normal DISCONNECT discards the will; 5.0 reason 0x04 publishes it.
		r := dialRaw(t, e.addr, packet.Version5)
		r.connect(&packet.Connect{ClientID: "wn", CleanStart: true, Will: &packet.Will{Topic: "will/normal", Payload: []byte("x")}})
		r.send(&packet.Disconnect{})
		r.closed()
		r = dialRaw(t, e.addr, packet.Version5)
		r.connect(&packet.Connect{ClientID: "ww", CleanStart: true, Will: &packet.Will{Topic: "will/with", Payload: []byte("y")}})
		r.send(&packet.Disconnect{ReasonCode: packet.DisconnectWithWill})
		r.closed()
		if m := s.recv(t); m.Topic() != "will/with" {
			t.Fatalf("got %s, want will/with (will/normal must not be published)", m.Topic())
		}
		// Will delay: published after the delay when the session outlives it.
		r = dialRaw(t, e.addr, packet.Version5)
		r.connect(&packet.Connect{ClientID: "wd", CleanStart: true,
			Properties: packet.Properties{SessionExpiry: u32(60)},
			Will:       &packet.Will{Topic: "will/delayed", Payload: []byte("z"), Properties: packet.Properties{WillDelay: u32(1)}}})
		r.nc.Close()
		if m := s.recv(t); m.Topic() != "will/delayed" {
			t.Fatalf("got %s", m.Topic())
		}
	})
}

func TestV5SubscriptionOptions(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		c := dialV5(t, e.addr, &paho.Connect{ClientID: "opts", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		other := dialV5(t, e.addr, &paho.Connect{ClientID: "other", CleanStart: true})
		other.pub(t, &paho.Publish{Topic: "ret/x", QoS: 1, Retain: true, Payload: []byte("kept")})
		// no-local: own messages are not delivered back.
		c.sub(t, paho.SubscribeOptions{Topic: "nl/#", QoS: 1, NoLocal: true})
		c.pub(t, &paho.Publish{Topic: "nl/a", QoS: 1, Payload: []byte("own")})
		other.pub(t, &paho.Publish{Topic: "nl/a", QoS: 1, Payload: []byte("theirs")})
		if m := c.recv(t); string(m.Payload) != "theirs" {
			t.Fatalf("no-local: got %q", m.Payload)
		}
		// retain handling 2: no retained message on subscribe; retain-as-published
		// keeps RETAIN on forwarded messages; the subscription id comes back.
		id := 7
		c.subProps(t, &paho.SubscribeProperties{SubscriptionIdentifier: &id},
			paho.SubscribeOptions{Topic: "ret/#", QoS: 1, RetainHandling: 2, RetainAsPublished: true})
		other.pub(t, &paho.Publish{Topic: "ret/y", QoS: 1, Retain: true, Payload: []byte("live")})
		m := c.recv(t)
		if string(m.Payload) != "live" || !m.Retain {
			t.Fatalf("retain-as-published: %q retain=%v (retained 'kept' must not come with RH=2)", m.Payload, m.Retain)
		}
		if m.Properties == nil || m.Properties.SubscriptionIdentifier == nil || *m.Properties.SubscriptionIdentifier != 7 {
			t.Fatalf("subscription identifier missing: %+v", m.Properties)
		}
		// retain handling 1: retained sent for a new subscription only.
		c.sub(t, paho.SubscribeOptions{Topic: "ret/x", QoS: 1, RetainHandling: 1})
		if m := c.recv(t); string(m.Payload) != "kept" || !m.Retain {
			t.Fatalf("RH=1 new: %q", m.Payload)
		}
		c.sub(t, paho.SubscribeOptions{Topic: "ret/x", QoS: 1, RetainHandling: 1})
		other.pub(t, &paho.Publish{Topic: "nl/marker", QoS: 1, Payload: []byte("marker")})
		if m := c.recv(t); string(m.Payload) != "marker" {
			t.Fatalf("RH=1 existing subscription got a retained message: %q", m.Payload)
		}
		// Unsubscribe.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		ua, err := c.c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"nl/#", "never"}})
		if err != nil && ua == nil {
			t.Fatal(err)
		}
		if ua.Reasons[0] != 0 || ua.Reasons[1] != byte(packet.NoSubscriptionExisted) {
			t.Fatalf("unsuback: %v", ua.Reasons)
		}
	})
}

func TestMessageExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		clk := newFakeClock()
		e := newEnv(t, k, broker.Options{Clock: clk.Now})
		s := dialV5(t, e.addr, &paho.Connect{ClientID: "exp", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		s.sub(t, paho.SubscribeOptions{Topic: "e/#", QoS: 1})
		s.c.Disconnect(&paho.Disconnect{})
		p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
		p.pub(t, &paho.Publish{Topic: "e/1", QoS: 1, Payload: []byte("short"), Properties: &paho.PublishProperties{MessageExpiry: u32(5)}})
		p.pub(t, &paho.Publish{Topic: "e/2", QoS: 1, Payload: []byte("long"), Properties: &paho.PublishProperties{MessageExpiry: u32(100)}})
		clk.Add(10e9)
		s = dialV5(t, e.addr, &paho.Connect{ClientID: "exp", CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
		m := s.recv(t)
		if string(m.Payload) != "long" {
			t.Fatalf("expired message delivered: %q", m.Payload)
		}
		if m.Properties == nil || m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry > 90 {
			t.Fatalf("remaining expiry not lowered: %+v", m.Properties)
		}
	})
}

func TestSessionLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		clk := newFakeClock()
		e := newEnv(t, k, broker.Options{Clock: clk.Now})
		c := dialV5(t, e.addr, &paho.Connect{ClientID: "life", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(30)}})
		if c.ack.SessionPresent {
			t.Fatal("fresh session present")
		}
		c.sub(t, paho.SubscribeOptions{Topic: "l/#", QoS: 1})
		c.c.Disconnect(&paho.Disconnect{})
		c = dialV5(t, e.addr, &paho.Connect{ClientID: "life", CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(30)}})
		if !c.ack.SessionPresent {
			t.Fatal("session not present on resume")
		}
		c.c.Disconnect(&paho.Disconnect{})
		e.connected(0)
		// Expiry while running: the clock passes the deadline, the expiry loop
		// removes the session.
		before := e.b.Stats().Sessions
		clk.Add(31e9)
		eventually(t, "session expiry", func() bool { return e.b.Stats().Sessions == before-1 })
		c = dialV5(t, e.addr, &paho.Connect{ClientID: "life", CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(30)}})
		if c.ack.SessionPresent {
			t.Fatal("expired session still present")
		}
		// Clean start discards a stored session (3.1.1 clean session too).
		s := dialV3(t, e.addr, "clean", false)
		s.sub(t, "x", 1)
		s.close()
		s = dialV3(t, e.addr, "clean", true)
		s.close()
		r := dialRaw(t, e.addr, packet.Version311)
		if ack := r.connect(&packet.Connect{ClientID: "clean"}); ack.SessionPresent {
			t.Fatal("3.1.1 clean session did not discard the session")
		}
	})
}

func TestTakeover(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		old := dialRaw(t, e.addr, packet.Version5)
		old.connect(&packet.Connect{ClientID: "dup", Properties: packet.Properties{SessionExpiry: u32(60)}})
		old.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "t/#", QoS: 1}}})
		old.must()
		nw := dialRaw(t, e.addr, packet.Version5)
		ack := nw.connect(&packet.Connect{ClientID: "dup", Properties: packet.Properties{SessionExpiry: u32(60)}})
		if !ack.SessionPresent {
			t.Fatal("takeover lost the session")
		}
		if rc := old.closed(); rc != packet.SessionTakenOver {
			t.Fatalf("old connection: reason %v, want session taken over", rc)
		}
		p := dialV3(t, e.addr, "p", true)
		p.pub(t, "t/1", 1, false, "to-new")
		pub, ok := nw.must().(*packet.Publish)
		if !ok || string(pub.Payload) != "to-new" {
			t.Fatalf("new connection did not get the session's messages: %+v", pub)
		}
	})
}

func TestAuthAndLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{
			Limits: broker.Limits{MaxClientIDLen: 16, MaxQueuedMessages: 3},
			Hooks: broker.Hooks{
				Authenticate: func(_ context.Context, c broker.ClientInfo, user string, _ []byte) error {
					switch user {
					case "bad":
						return errors.New("wrong password")
					case "banned":
						return broker.ErrNotAuthorized
					}
					return nil
				},
				AuthorizePublish: func(_ context.Context, c broker.ClientInfo, topic string, _ byte, _ bool) error {
					if strings.HasPrefix(topic, "ro/") {
						return errors.New("read only")
					}
					return nil
				},
				AuthorizeSubscribe: func(_ context.Context, c broker.ClientInfo, filter string, qos byte) (byte, error) {
					if strings.HasPrefix(filter, "secret") {
						return 0, errors.New("no")
					}
					return min(qos, 1), nil
				},
			},
		})
		for user, want := range map[string]packet.ReasonCode{"bad": packet.BadUsernameOrPassword, "banned": packet.NotAuthorized} {
			r := dialRaw(t, e.addr, packet.Version5)
			if ack := r.connect(&packet.Connect{ClientID: "a", Username: user, HasUsername: true}); ack.ReasonCode != want {
				t.Fatalf("user %s: CONNACK %v, want %v", user, ack.ReasonCode, want)
			}
		}
		r := dialRaw(t, e.addr, packet.Version311)
		if ack := r.connect(&packet.Connect{ClientID: "bad", Username: "bad", HasUsername: true}); ack.ReasonCode != packet.BadUsernameOrPassword {
			t.Fatalf("3.1.1 CONNACK %v", ack.ReasonCode)
		}
		r = dialRaw(t, e.addr, packet.Version5)
		if ack := r.connect(&packet.Connect{ClientID: strings.Repeat("x", 17)}); ack.ReasonCode != packet.ClientIDNotValid {
			t.Fatalf("long client id: CONNACK %v", ack.ReasonCode)
		}
		c := dialV5(t, e.addr, &paho.Connect{ClientID: "c", CleanStart: true})
		sa := c.sub(t, paho.SubscribeOptions{Topic: "secret/#", QoS: 1}, paho.SubscribeOptions{Topic: "open/#", QoS: 2},
			paho.SubscribeOptions{Topic: "bad/#/x", QoS: 1})
		want := []byte{byte(packet.NotAuthorized), 1, byte(packet.TopicFilterInvalid)}
		if string(sa.Reasons) != string(want) {
			t.Fatalf("suback %v, want %v", sa.Reasons, want)
		}
		raw := dialRaw(t, e.addr, packet.Version5)
		raw.connect(&packet.Connect{ClientID: "shared"})
		raw.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "$share/g/x", QoS: 1}}})
		if sa, ok := raw.must().(*packet.Suback); !ok || sa.ReasonCodes[0] != packet.GrantedQoS1 {
			t.Fatalf("shared subscription: %+v", sa)
		}
		if r := c.pub(t, &paho.Publish{Topic: "ro/x", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(packet.NotAuthorized) {
			t.Fatalf("unauthorized publish: %#x", r.ReasonCode)
		}
		if r := c.pub(t, &paho.Publish{Topic: "$SYS/x", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(packet.NotAuthorized) {
			t.Fatalf("$SYS publish: %#x", r.ReasonCode)
		}
		// Queue limit: a full queue refuses new messages for that session only.
		q := dialV3(t, e.addr, "q", false)
		q.sub(t, "open/#", 1)
		q.close()
		e.connected(2)
		for i := range 5 {
			c.pub(t, &paho.Publish{Topic: "open/q", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		}
		if d := e.b.Stats().Dropped; d != 2 {
			t.Fatalf("dropped %d, want 2", d)
		}
		q = dialV3(t, e.addr, "q", false)
		for i := range 3 {
			if m := q.recv(t); string(m.Payload()) != fmt.Sprint(i) {
				t.Fatalf("queued %d: %q", i, m.Payload())
			}
		}
	})
}

// TestStorageErrors: a store that fails is reported to the client, never swallowed.
func TestStorageErrors(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{})
	s := dialV3(t, e.addr, "persist", false)
	s.sub(t, "se/#", 1)
	s.close()
	p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
	e.store.Close()
	if r := p.pub(t, &paho.Publish{Topic: "se/x", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(packet.UnspecifiedError) {
		t.Fatalf("PUBACK %#x, want 0x80", r.ReasonCode)
	}
	r := dialRaw(t, e.addr, packet.Version5)
	if ack := r.connect(&packet.Connect{ClientID: "new", Properties: packet.Properties{SessionExpiry: u32(10)}}); ack.ReasonCode != packet.UnspecifiedError {
		t.Fatalf("CONNACK %v, want 0x80", ack.ReasonCode)
	}
	if e.b.Stats().StorageErrors < 2 {
		t.Fatalf("storage errors not counted: %+v", e.b.Stats())
	}
}
