package packet

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeErrors(t *testing.T) {
	long := strings.Repeat("a", 65536)
	tests := []struct {
		name string
		v    byte
		p    Packet
		want ReasonCode
	}{
		{"nil", Version5, nil, MalformedPacket},
		{"typed nil", Version5, (*Publish)(nil), MalformedPacket},
		{"bad version", 6, &Pingreq{}, UnsupportedProtocolVersion},
		{"version 0 non-connect", 0, &Pingreq{}, UnsupportedProtocolVersion},
		{"connect version mismatch", Version311, &Connect{ProtocolVersion: 5}, UnsupportedProtocolVersion},
		{"connect version 0 both", 0, &Connect{}, UnsupportedProtocolVersion},
		{"connect name mismatch", Version31, &Connect{ProtocolName: "MQTT"}, UnsupportedProtocolVersion},
		{"connect will qos 3", Version311, &Connect{Will: &Will{Topic: "t", QoS: 3}}, MalformedPacket},
		{"connect password without user 3.1.1", Version311, &Connect{HasPassword: true}, ProtocolError},
		{"connect client id too long", Version311, &Connect{ClientID: long}, MalformedPacket},
		{"connect password too long", Version5, &Connect{HasPassword: true, Password: []byte(long)}, MalformedPacket},
		{"connect prop not allowed", Version5, &Connect{Properties: Properties{TopicAlias: p16(1)}}, MalformedPacket},
		{"connect will prop not allowed", Version5, &Connect{Will: &Will{Topic: "t", Properties: Properties{SessionExpiry: p32(1)}}}, MalformedPacket},
		{"connack session present refused", Version311, &Connack{SessionPresent: true, ReasonCode: NotAuthorized}, ProtocolError},
		{"connack bad reason 5.0", Version5, &Connack{ReasonCode: GrantedQoS1}, ProtocolError},
		{"publish qos 3", Version311, &Publish{Topic: "t", QoS: 3, PacketID: 1}, MalformedPacket},
		{"publish dup qos 0 5.0", Version5, &Publish{Topic: "t", Dup: true}, MalformedPacket},
		{"publish packet id 0", Version311, &Publish{Topic: "t", QoS: 1}, ProtocolError},
		{"publish empty topic", Version311, &Publish{}, ProtocolError},
		{"publish empty topic no alias", Version5, &Publish{}, ProtocolError},
		{"publish topic too long", Version311, &Publish{Topic: long}, MalformedPacket},
		{"publish topic invalid utf-8", Version311, &Publish{Topic: "\xff"}, MalformedPacket},
		{"publish topic NUL", Version311, &Publish{Topic: "a\x00"}, MalformedPacket},
		{"publish topic alias 0", Version5, &Publish{Topic: "t", Properties: Properties{TopicAlias: p16(0)}}, ProtocolError},
		{"publish sub id 0", Version5, &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{0}}}, ProtocolError},
		{"publish sub id too big", Version5, &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{1 << 28}}}, ProtocolError},
		{"publish payload format 2", Version5, &Publish{Topic: "t", Properties: Properties{PayloadFormat: p8(2)}}, ProtocolError},
		{"publish correlation too long", Version5, &Publish{Topic: "t", Properties: Properties{CorrelationData: []byte(long)}}, MalformedPacket},
		{"publish user key invalid", Version5, &Publish{Topic: "t", Properties: Properties{User: []UserProperty{{"\xc0", ""}}}}, MalformedPacket},
		{"puback bad reason", Version5, &Puback{PacketID: 1, ReasonCode: PacketIDNotFound}, ProtocolError},
		{"puback packet id 0", Version311, &Puback{}, ProtocolError},
		{"pubrel bad reason", Version5, &Pubrel{PacketID: 1, ReasonCode: QuotaExceeded}, ProtocolError},
		{"pubcomp prop not allowed", Version5, &Pubcomp{PacketID: 1, Properties: Properties{ContentType: "x"}}, MalformedPacket},
		{"subscribe empty", Version311, &Subscribe{PacketID: 1}, ProtocolError},
		{"subscribe qos 3", Version311, &Subscribe{PacketID: 1, Subscriptions: []SubscribeOption{{Filter: "a", QoS: 3}}}, ProtocolError},
		{"subscribe retain handling 3", Version5, &Subscribe{PacketID: 1, Subscriptions: []SubscribeOption{{Filter: "a", RetainHandling: 3}}}, ProtocolError},
		{"subscribe two sub ids", Version5, &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []uint32{1, 2}},
			Subscriptions: []SubscribeOption{{Filter: "a"}}}, ProtocolError},
		{"suback empty", Version5, &Suback{PacketID: 1}, ProtocolError},
		{"suback bad code 5.0", Version5, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NoMatchingSubscribers}}, ProtocolError},
		{"suback bad code 3.1.1", Version311, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{3}}, ProtocolError},
		{"unsubscribe empty", Version5, &Unsubscribe{PacketID: 1}, ProtocolError},
		{"unsubscribe filter invalid", Version311, &Unsubscribe{PacketID: 1, Filters: []string{"\x00"}}, MalformedPacket},
		{"unsuback empty 5.0", Version5, &Unsuback{PacketID: 1}, ProtocolError},
		{"disconnect bad reason", Version5, &Disconnect{ReasonCode: GrantedQoS1}, ProtocolError},
		{"auth 3.1.1", Version311, &Auth{}, ProtocolError},
		{"auth bad reason", Version5, &Auth{ReasonCode: NotAuthorized}, ProtocolError},
		{"auth data without method", Version5, &Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthData: []byte{1}}}, ProtocolError},
		{"auth receive maximum 0", Version5, &Connect{Properties: Properties{ReceiveMaximum: p16(0)}}, ProtocolError},
		{"connect max packet size 0", Version5, &Connect{Properties: Properties{MaximumPacketSize: p32(0)}}, ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			out, err := Encode(dst, tt.p, tt.v)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.want {
				t.Fatalf("Encode = % x, %v; want code %v", out, err, tt.want)
			}
			if !bytes.Equal(out, dst) {
				t.Fatalf("dst modified on error: % x", out)
			}
		})
	}
}

// TestEncodeTooLarge checks the protocol's remaining-length ceiling
// without building a 256 MB payload more than once.
func TestEncodeTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MB")
	}
	p := &Publish{Topic: "t", Payload: make([]byte, MaxRemainingLength-2)}
	if _, err := Encode(nil, p, Version311); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	p.Payload = p.Payload[:MaxRemainingLength-3]
	b, err := Encode(nil, p, Version311)
	if err != nil || len(b) != MaxRemainingLength+5 {
		t.Fatalf("at maximum: %d, %v", len(b), err)
	}
}

// TestEncodeLenient documents that user name and password are sent when
// set even if the Has flag was forgotten.
func TestEncodeLenient(t *testing.T) {
	b, err := Encode(nil, &Connect{ClientID: "c", Username: "u", Password: []byte("p")}, Version311)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadPacket(reader(b), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(*Connect)
	if !c.HasUsername || !c.HasPassword || c.Username != "u" || string(c.Password) != "p" || c.ProtocolName != "MQTT" {
		t.Fatalf("%#v", c)
	}
	// Properties and 5.0-only fields are ignored for 3.1.1.
	b, err = Encode(nil, &Subscribe{PacketID: 1, Properties: Properties{ContentType: "ignored"},
		Subscriptions: []SubscribeOption{{Filter: "a", QoS: 1, NoLocal: true, RetainHandling: 2}}}, Version311)
	if err != nil || !bytes.Equal(b, hexBytes("82 06 00 01 00 01 61 01")) {
		t.Fatalf("% x, %v", b, err)
	}
	b, err = Encode(nil, &Disconnect{ReasonCode: ServerShuttingDown}, Version311)
	if err != nil || !bytes.Equal(b, hexBytes("e0 00")) {
		t.Fatalf("% x, %v", b, err)
	}
	b, err = Encode(nil, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NotAuthorized, QuotaExceeded}}, Version311)
	if err != nil || !bytes.Equal(b, hexBytes("90 04 00 01 80 80")) {
		t.Fatalf("% x, %v", b, err)
	}
}

func TestConnackCode311(t *testing.T) {
	for rc, want := range map[ReasonCode]byte{
		Success: 0, UnsupportedProtocolVersion: 1, ClientIDNotValid: 2, ServerUnavailable: 3,
		ServerBusy: 3, UnspecifiedError: 3, MalformedPacket: 3, BadUsernameOrPassword: 4,
		BadAuthenticationMethod: 4, NotAuthorized: 5, Banned: 5,
	} {
		if got := ConnackCode311(rc); got != want {
			t.Errorf("ConnackCode311(%v) = %d, want %d", rc, got, want)
		}
		b, err := Encode(nil, &Connack{ReasonCode: rc}, Version311)
		if err != nil || b[3] != want {
			t.Errorf("Encode CONNACK %v: % x, %v", rc, b, err)
		}
	}
	for code := byte(0); code <= 5; code++ {
		rc, ok := connackReason311(code)
		if !ok || ConnackCode311(rc) != code {
			t.Errorf("return code %d does not round-trip", code)
		}
	}
}

func TestStrings(t *testing.T) {
	if CONNECT.String() != "CONNECT" || AUTH.String() != "AUTH" || Type(0).String() != "Type(0)" {
		t.Fatal("Type.String")
	}
	if PacketTooLarge.String() != "packet too large" || ReasonCode(0x03).String() != "ReasonCode(0x03)" {
		t.Fatalf("ReasonCode.String: %q", ReasonCode(0x03).String())
	}
	if !UnspecifiedError.IsError() || GrantedQoS2.IsError() {
		t.Fatal("IsError")
	}
	for _, p := range samples(Version5) {
		if p.Type().String() == "" {
			t.Fatal("empty name")
		}
	}
}

func TestClone(t *testing.T) {
	p := samples(Version5)[9].(*Publish)
	b, _ := Encode(nil, p, Version5)
	got, err := ReadPacket(reader(b), Version5, 0)
	if err != nil {
		t.Fatal(err)
	}
	orig := got.(*Publish)
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatal("clone differs")
	}
	c.Payload[0] = 0xFF
	*c.Properties.MessageExpiry = 1
	c.Properties.User[0].Key = "changed"
	c.Properties.CorrelationData[0] = 0xAA
	c.Properties.SubscriptionIDs[0] = 99
	if !reflect.DeepEqual(orig, p) {
		t.Fatal("modifying the clone changed the original")
	}
	if (*Publish)(nil).Clone() != nil {
		t.Fatal("nil clone")
	}
}

// TestNoAliasingBetweenReads checks that decoded packets own their memory:
// reading the next packet through the same bufio.Reader must not change
// the previous one.
func TestNoAliasingBetweenReads(t *testing.T) {
	a, _ := Encode(nil, &Publish{Topic: "first", Payload: []byte("one")}, Version311)
	b, _ := Encode(nil, &Publish{Topic: "other", Payload: []byte("two")}, Version311)
	r := reader(append(a, b...))
	p1, _ := ReadPacket(r, Version311, 0)
	if _, err := ReadPacket(r, Version311, 0); err != nil {
		t.Fatal(err)
	}
	if p := p1.(*Publish); p.Topic != "first" || string(p.Payload) != "one" {
		t.Fatalf("first packet changed: %q %q", p.Topic, p.Payload)
	}
}
