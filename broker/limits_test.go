package broker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

func u16(v uint16) *uint16 { return &v }

// TestTopicAliases: client-to-server aliases (the broker announces its maximum)
// and server-to-client aliases within the client's maximum.
func TestTopicAliases(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{})
	sub := dialV5(t, e.addr, &paho.Connect{ClientID: "sub", CleanStart: true,
		Properties: &paho.ConnectProperties{TopicAliasMaximum: u16(2)}})
	sub.sub(t, paho.SubscribeOptions{Topic: "al/#", QoS: 1})
	plain := dialV5(t, e.addr, &paho.Connect{ClientID: "plain", CleanStart: true})
	plain.sub(t, paho.SubscribeOptions{Topic: "al/#", QoS: 0})
	s3 := dialV3(t, e.addr, "s3", true)
	s3.sub(t, "al/#", 1)

	p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
	if tam := p.ack.Properties.TopicAliasMaximum; tam == nil || *tam != broker.DefaultTopicAliasMaximum {
		t.Fatalf("CONNACK Topic Alias Maximum %v, want %d", tam, broker.DefaultTopicAliasMaximum)
	}
	sends := []struct {
		topic string
		alias uint16
	}{{"al/a", 1}, {"", 1}, {"al/b", 2}, {"al/c", 0}, {"", 2}, {"al/a", 0}}
	topics := []string{"al/a", "al/a", "al/b", "al/c", "al/b", "al/a"}
	for i, s := range sends {
		pub := &paho.Publish{Topic: s.topic, QoS: 1, Payload: []byte{byte(i)}}
		if s.alias != 0 {
			pub.Properties = &paho.PublishProperties{TopicAlias: u16(s.alias)}
		}
		if r := p.pub(t, pub); r.ReasonCode != 0 {
			t.Fatalf("publish %d: reason %#x", i, r.ReasonCode)
		}
	}
	// The broker gives aliases 1 and 2 to the first two topics, and sends the
	// third in full.
	wantTopic := []string{"al/a", "", "al/b", "al/c", "", ""}
	wantAlias := []uint16{1, 1, 2, 0, 2, 1}
	for i := range sends {
		m := sub.recv(t)
		var alias uint16
		if m.Properties != nil && m.Properties.TopicAlias != nil {
			alias = *m.Properties.TopicAlias
		}
		if m.Topic != wantTopic[i] || alias != wantAlias[i] || m.Payload[0] != byte(i) {
			t.Fatalf("message %d: topic %q alias %d payload %v, want topic %q alias %d", i, m.Topic, alias, m.Payload, wantTopic[i], wantAlias[i])
		}
		if m := plain.recv(t); m.Topic != topics[i] || (m.Properties != nil && m.Properties.TopicAlias != nil) {
			t.Fatalf("client without aliases, message %d: topic %q", i, m.Topic)
		}
		if m := s3.recv(t); m.Topic() != topics[i] {
			t.Fatalf("3.1.1 client, message %d: topic %q", i, m.Topic())
		}
	}
}

func TestLimitsAdvertisedAndEnforced(t *testing.T) {
	one := byte(1)
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{
		MaxKeepAlive: 20, MaximumQoS: &one, RetainUnavailable: true, WildcardSubUnavailable: true,
		SharedSubUnavailable: true, SubIDUnavailable: true, ReceiveMaximum: 5, MaxPacketSize: 2048,
		TopicAliasMaximum: -1,
	}})
	c := dialV5(t, e.addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 60})
	ap := c.ack.Properties
	switch {
	case ap.ServerKeepAlive == nil || *ap.ServerKeepAlive != 20:
		t.Errorf("Server Keep Alive %v, want 20", ap.ServerKeepAlive)
	case ap.ReceiveMaximum == nil || *ap.ReceiveMaximum != 5:
		t.Errorf("Receive Maximum %v", ap.ReceiveMaximum)
	case ap.MaximumPacketSize == nil || *ap.MaximumPacketSize != 2048:
		t.Errorf("Maximum Packet Size %v", ap.MaximumPacketSize)
	case ap.MaximumQoS == nil || *ap.MaximumQoS != 1:
		t.Errorf("Maximum QoS %v", ap.MaximumQoS)
	case ap.TopicAliasMaximum != nil && *ap.TopicAliasMaximum != 0:
		t.Errorf("Topic Alias Maximum %v", *ap.TopicAliasMaximum)
	case ap.RetainAvailable || ap.WildcardSubAvailable || ap.SharedSubAvailable || ap.SubIDAvailable:
		t.Errorf("features announced available: %+v", ap)
	}
	// paho.golang checks these itself, so a raw client asks.
	rs := dialRaw(t, e.addr, packet.Version5)
	rs.connect(&packet.Connect{ClientID: "rs", CleanStart: true})
	rs.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{
		{Filter: "w/+", QoS: 1}, {Filter: "$share/g/x", QoS: 1}, {Filter: "plain", QoS: 2}}})
	want := []packet.ReasonCode{packet.WildcardSubNotSupported, packet.SharedSubNotSupported, packet.GrantedQoS1}
	if sa, ok := rs.must().(*packet.Suback); !ok || !slices.Equal(sa.ReasonCodes, want) {
		t.Fatalf("SUBACK %+v, want %v", sa, want)
	}
	v3 := dialV3(t, e.addr, "v3", true)
	tok := v3.c.Subscribe("w/#", 1, nil)
	if !tok.WaitTimeout(wait) || tok.(*mqtt.SubscribeToken).Result()["w/#"] != 0x80 {
		t.Fatalf("3.1.1 wildcard SUBACK: %v", tok.(*mqtt.SubscribeToken).Result())
	}

	refused := []struct {
		name string
		p    packet.Packet
		want packet.ReasonCode
	}{
		{"QoS 2", &packet.Publish{Topic: "x", QoS: 2, PacketID: 1}, packet.QoSNotSupported},
		{"retain", &packet.Publish{Topic: "x", Retain: true}, packet.RetainNotSupported},
		{"subscription id", &packet.Subscribe{PacketID: 1, Properties: packet.Properties{SubscriptionIDs: []uint32{7}},
			Subscriptions: []packet.SubscribeOption{{Filter: "x"}}}, packet.SubIDNotSupported},
		{"topic alias", &packet.Publish{Topic: "x", Properties: packet.Properties{TopicAlias: u16(1)}}, packet.TopicAliasInvalid},
	}
	for _, r := range refused {
		raw := dialRaw(t, e.addr, packet.Version5)
		raw.connect(&packet.Connect{ClientID: "r", CleanStart: true})
		raw.send(r.p)
		if rc := raw.closed(); rc != r.want {
			t.Errorf("%s: DISCONNECT %v, want %v", r.name, rc, r.want)
		}
	}
	for _, w := range []struct {
		will *packet.Will
		want packet.ReasonCode
	}{
		{&packet.Will{Topic: "w", QoS: 2, Payload: []byte("x")}, packet.QoSNotSupported},
		{&packet.Will{Topic: "w", Retain: true, Payload: []byte("x")}, packet.RetainNotSupported},
	} {
		raw := dialRaw(t, e.addr, packet.Version5)
		if ack := raw.connect(&packet.Connect{ClientID: "w", CleanStart: true, Will: w.will}); ack.ReasonCode != w.want {
			t.Errorf("will %+v: CONNACK %v, want %v", w.will, ack.ReasonCode, w.want)
		}
	}
}

// TestKeepAliveCap: a client asking for more than the maximum keepalive (or
// none) is timed out at one and a half times the maximum.
func TestKeepAliveCap(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{MaxKeepAlive: 1}})
	for _, v := range []byte{packet.Version5, packet.Version311} {
		raw := dialRaw(t, e.addr, v)
		ack := raw.connect(&packet.Connect{ClientID: "k", CleanStart: true, KeepAlive: 0})
		if v == packet.Version5 && (ack.Properties.ServerKeepAlive == nil || *ack.Properties.ServerKeepAlive != 1) {
			t.Fatalf("Server Keep Alive %v, want 1", ack.Properties.ServerKeepAlive)
		}
		began := time.Now()
		rc := raw.closed()
		if v == packet.Version5 && rc != packet.KeepAliveTimeout {
			t.Fatalf("DISCONNECT %v, want keep alive timeout", rc)
		}
		if d := time.Since(began); d < time.Second {
			t.Fatalf("closed after %v, before the keepalive ran out", d)
		}
	}
}

// TestReceiveMaximumExceeded: a client with more unreleased QoS 2 messages than
// the broker's Receive Maximum gets DISCONNECT 0x93, readable although it kept
// sending.
func TestReceiveMaximumExceeded(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{ReceiveMaximum: 2}})
	raw := dialRaw(t, e.addr, packet.Version5)
	raw.connect(&packet.Connect{ClientID: "greedy", CleanStart: true})
	var burst []byte
	payload := make([]byte, 1000)
	for i := range 300 {
		b, err := packet.Encode(nil, &packet.Publish{Topic: "rm", QoS: 2, PacketID: uint16(i + 1), Payload: payload}, packet.Version5)
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, b...)
	}
	go func() {
		raw.nc.SetWriteDeadline(time.Now().Add(wait))
		raw.nc.Write(burst) // fails part way once the broker closes; that is the point
	}()
	recs := 0
	for {
		p, err := raw.read()
		if err != nil {
			t.Fatalf("connection ended without DISCONNECT 0x93 (after %d PUBREC): %v", recs, err)
		}
		switch p := p.(type) {
		case *packet.Pubrec:
			recs++
		case *packet.Disconnect:
			if p.ReasonCode != packet.ReceiveMaximumExceeded || recs != 2 {
				t.Fatalf("DISCONNECT %v after %d PUBREC, want 0x93 after 2", p.ReasonCode, recs)
			}
			return
		default:
			t.Fatalf("unexpected %T", p)
		}
	}
}

// TestSubscribeEffectiveOnArrival: a message the broker receives after a
// SUBSCRIBE is routed to it even before the SUBSCRIBE is done; and a
// subscription whose commit fails is withdrawn.
func TestSubscribeEffectiveOnArrival(t *testing.T) {
	eachFastStore(t, func(t *testing.T, k storeKind) {
		entered, release := make(chan struct{}), make(chan struct{})
		e := newEnv(t, k, broker.Options{Hooks: broker.Hooks{
			AuthorizeSubscribe: func(ctx context.Context, _ broker.ClientInfo, filter string, qos byte) (byte, error) {
				if filter == "gate" {
					close(entered)
					select {
					case <-release:
					case <-time.After(wait):
					}
				}
				return qos, nil
			},
		}})
		s := dialV5(t, e.addr, &paho.Connect{ClientID: "s", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		subDone := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: "eff/#", QoS: 1}, {Topic: "gate", QoS: 1}}})
			subDone <- err
		}()
		select {
		case <-entered:
		case <-time.After(wait):
			t.Fatal("SUBSCRIBE not handled")
		}
		p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
		p.pub(t, &paho.Publish{Topic: "eff/x", QoS: 1, Payload: []byte("early")})
		close(release)
		if err := <-subDone; err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		if m := s.recv(t); string(m.Payload) != "early" {
			t.Fatalf("got %q", m.Payload)
		}
	})
	t.Run("withdrawn on failure", func(t *testing.T) {
		e := newEnv(t, storeKinds()[0], broker.Options{})
		s := dialV5(t, e.addr, &paho.Connect{ClientID: "s", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		s.sub(t, paho.SubscribeOptions{Topic: "marker", QoS: 0})
		p := dialV5(t, e.addr, &paho.Connect{ClientID: "p", CleanStart: true})
		e.store.Close()
		if sa := s.sub(t, paho.SubscribeOptions{Topic: "w/#", QoS: 0}); sa.Reasons[0] != byte(packet.UnspecifiedError) {
			t.Fatalf("SUBACK %v, want 0x80", sa.Reasons)
		}
		p.pub(t, &paho.Publish{Topic: "w/x", QoS: 0, Payload: []byte("withdrawn")})
		p.pub(t, &paho.Publish{Topic: "marker", QoS: 0, Payload: []byte("marker")})
		if m := s.recv(t); string(m.Payload) != "marker" {
			t.Fatalf("got %q from a withdrawn subscription", m.Payload)
		}
	})
}

// TestPipelinedPublishes: a client that sends many publishes at once gets every
// acknowledgement, in order.
func TestPipelinedPublishes(t *testing.T) {
	eachFastStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{Limits: broker.Limits{ReceiveMaximum: 500}})
		sub := dialV5(t, e.addr, &paho.Connect{ClientID: "sub", CleanStart: true})
		sub.sub(t, paho.SubscribeOptions{Topic: "pipe/#", QoS: 1})
		raw := dialRaw(t, e.addr, packet.Version5)
		raw.connect(&packet.Connect{ClientID: "pipe", CleanStart: true})
		const n = 300
		var burst []byte
		for i := range n {
			b, err := packet.Encode(nil, &packet.Publish{Topic: "pipe/x", QoS: byte(1 + i%2), PacketID: uint16(i + 1), Payload: []byte{byte(i)}}, packet.Version5)
			if err != nil {
				t.Fatal(err)
			}
			burst = append(burst, b...)
		}
		raw.write(burst)
		// Every PUBACK and PUBREC, in order; PUBCOMPs come after the PUBRELs,
		// which follow the burst.
		for i, comps := 0, 0; i < n || comps < n/2; {
			switch p := raw.must().(type) {
			case *packet.Puback:
				if i >= n || p.PacketID != uint16(i+1) || i%2 != 0 {
					t.Fatalf("ack %d: PUBACK %d", i, p.PacketID)
				}
				i++
			case *packet.Pubrec:
				if i >= n || p.PacketID != uint16(i+1) || i%2 != 1 {
					t.Fatalf("ack %d: PUBREC %d", i, p.PacketID)
				}
				raw.send(&packet.Pubrel{PacketID: p.PacketID})
				i++
			case *packet.Pubcomp:
				comps++
			default:
				t.Fatalf("unexpected %T", p)
			}
		}
		for i := range n {
			if m := sub.recv(t); m.Payload[0] != byte(i) {
				t.Fatalf("message %d: payload %d", i, m.Payload[0])
			}
		}
	})
}
