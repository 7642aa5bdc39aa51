package broker_test

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// TestMalformed sends bad bytes over TCP: the broker closes the connection with
// the reason code the specification asks for, never panics, and keeps serving.
func TestMalformed(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{MaxPacketSize: 1024}})
	connected := func(t *testing.T, v byte) *rawClient {
		r := dialRaw(t, e.addr, v)
		if ack := r.connect(&packet.Connect{ClientID: "m", CleanStart: true}); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		return r
	}
	cases := []struct {
		name  string
		v     byte
		bytes []byte
		want  packet.ReasonCode // 5.0 DISCONNECT reason; 0: closed without one
	}{
		{"v5 PUBLISH QoS 3", packet.Version5, []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}, packet.MalformedPacket},
		{"v5 bad remaining length", packet.Version5, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, packet.MalformedPacket},
		{"v5 oversized", packet.Version5, append([]byte{0x30, 0x80, 0x10}, make([]byte, 10)...), packet.PacketTooLarge},
		{"v5 SUBSCRIBE bad flags", packet.Version5, []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}, packet.MalformedPacket},
		{"v5 topic alias above maximum", packet.Version5, []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x23, 0x01, 0x00}, packet.TopicAliasInvalid},
		{"v5 unknown topic alias", packet.Version5, []byte{0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05}, packet.ProtocolError},
		{"v5 wildcard topic", packet.Version5, []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00}, packet.TopicNameInvalid},
		{"v5 PUBLISH with subscription id", packet.Version5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x0B, 0x01}, packet.ProtocolError},
		{"v5 wildcard response topic", packet.Version5, []byte{0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x08, 0x00, 0x01, '+'}, packet.ProtocolError},
		{"v5 second CONNECT", packet.Version5, mustEncode(t, &packet.Connect{ProtocolVersion: 5, ClientID: "x"}), packet.ProtocolError},
		{"v311 reserved type", packet.Version311, []byte{0x00, 0x00}, 0},
		{"v311 bad UTF-8 topic", packet.Version311, []byte{0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 'x'}, 0},
		{"v311 oversized", packet.Version311, append([]byte{0x30, 0x80, 0x10}, make([]byte, 10)...), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := connected(t, c.v)
			r.write(c.bytes)
			if rc := r.closed(); rc != c.want {
				t.Fatalf("DISCONNECT reason %v, want %v", rc, c.want)
			}
		})
	}
	t.Run("garbage before CONNECT", func(t *testing.T) {
		r := dialRaw(t, e.addr, packet.Version311)
		r.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		r.closed()
	})
	t.Run("unsupported version", func(t *testing.T) {
		r := dialRaw(t, e.addr, packet.Version311)
		r.write([]byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x07, 0x02, 0x00, 0x3C, 0x00, 0x00})
		p, err := r.read()
		if ack, ok := p.(*packet.Connack); err != nil || !ok || ack.ReasonCode != packet.UnsupportedProtocolVersion {
			t.Fatalf("want CONNACK 0x01, got %+v %v", p, err)
		}
	})
	t.Run("still serving", func(t *testing.T) { connected(t, packet.Version5) })
}

func mustEncode(t *testing.T, p packet.Packet) []byte {
	b, err := packet.Encode(nil, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzConnection feeds arbitrary bytes to a broker connection (after a valid
// CONNECT when the input asks for one). The broker must not panic and must end the
// connection's goroutines once the client is gone.
func FuzzConnection(f *testing.F) {
	f.Add(false, []byte{0x30, 0x05, 0x00, 0x01, 'a', 0x00, 0x01})
	f.Add(true, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x01, 0xC0, 0x00})
	f.Add(true, []byte{0x62, 0x02, 0x00, 0x01, 0xE0, 0x00})
	f.Add(false, []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00})
	st, err := persistence.OpenConnector(f.Context(), mem.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	b, err := broker.New(f.Context(), broker.Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close()
	f.Fuzz(func(t *testing.T, connect bool, data []byte) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if connect {
			c, _ := packet.Encode(nil, &packet.Connect{ProtocolVersion: 5, ClientID: "fuzz", CleanStart: true}, 0)
			nc.Write(c)
		}
		nc.Write(data)
		nc.(*net.TCPConn).CloseWrite()
		buf := make([]byte, 4096)
		for {
			if _, err := nc.Read(buf); err != nil {
				break
			}
		}
	})
	eventuallyF(f, func() bool { return b.Stats().Connected == 0 })
}

func eventuallyF(f *testing.F, cond func() bool) {
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			f.Fatal("connections were not closed: goroutine leak")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
