package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func p8(v byte) *byte               { return &v }
func p16(v uint16) *uint16          { return &v }
func p32(v uint32) *uint32          { return &v }
func reader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// fullProps returns every property allowed in kind, with non-zero values,
// so that round trips exercise each identifier in each packet that may
// carry it.
func fullProps(kind uint32) Properties {
	all := Properties{
		PayloadFormat:        p8(1),
		MessageExpiry:        p32(3600),
		ContentType:          "text/plain; charset=utf-8",
		ResponseTopic:        "reply/to/é",
		CorrelationData:      []byte{0, 1, 2, 0xFF},
		SubscriptionIDs:      []uint32{1, 268435455},
		SessionExpiry:        p32(0), // present and zero is meaningful
		AssignedClientID:     "auto-42",
		ServerKeepAlive:      p16(30),
		AuthMethod:           "SCRAM-SHA-1",
		AuthData:             []byte("client-first"),
		RequestProblemInfo:   p8(0),
		WillDelay:            p32(10),
		RequestResponseInfo:  p8(1),
		ResponseInfo:         "resp/",
		ServerReference:      "other.example:1883",
		ReasonString:         "because",
		ReceiveMaximum:       p16(65535),
		TopicAliasMaximum:    p16(0),
		TopicAlias:           p16(7),
		MaximumQoS:           p8(1),
		RetainAvailable:      p8(0),
		User:                 []UserProperty{{"k", "v1"}, {"k", "v2"}, {"", ""}, {"ключ", "值"}},
		MaximumPacketSize:    p32(1 << 20),
		WildcardSubAvailable: p8(1),
		SubIDAvailable:       p8(0),
		SharedSubAvailable:   p8(1),
	}
	var p Properties
	pv, av := reflect.ValueOf(&p).Elem(), reflect.ValueOf(all)
	ids := map[string]uint32{
		"PayloadFormat": propPayloadFormat, "MessageExpiry": propMessageExpiry, "ContentType": propContentType,
		"ResponseTopic": propResponseTopic, "CorrelationData": propCorrelationData, "SubscriptionIDs": propSubscriptionID,
		"SessionExpiry": propSessionExpiry, "AssignedClientID": propAssignedClientID, "ServerKeepAlive": propServerKeepAlive,
		"AuthMethod": propAuthMethod, "AuthData": propAuthData, "RequestProblemInfo": propRequestProblemInfo,
		"WillDelay": propWillDelay, "RequestResponseInfo": propRequestResponseInfo, "ResponseInfo": propResponseInfo,
		"ServerReference": propServerReference, "ReasonString": propReasonString, "ReceiveMaximum": propReceiveMaximum,
		"TopicAliasMaximum": propTopicAliasMaximum, "TopicAlias": propTopicAlias, "MaximumQoS": propMaximumQoS,
		"RetainAvailable": propRetainAvailable, "User": propUser, "MaximumPacketSize": propMaximumPacketSize,
		"WildcardSubAvailable": propWildcardSubAvailable, "SubIDAvailable": propSubIDAvailable,
		"SharedSubAvailable": propSharedSubAvailable,
	}
	for i := 0; i < pv.NumField(); i++ {
		name := pv.Type().Field(i).Name
		id, ok := ids[name]
		if !ok {
			panic("fullProps: no identifier for field " + name)
		}
		if propAllowed[id]&kind != 0 {
			pv.Field(i).Set(av.Field(i))
		}
	}
	if kind == kindBit(SUBSCRIBE) {
		p.SubscriptionIDs = p.SubscriptionIDs[:1]
	}
	return p
}

// samples returns valid packets of every type for protocol level v, each
// in a minimal and a rich form.
func samples(v byte) []Packet {
	v5 := v == Version5
	props := func(t Type) Properties {
		if !v5 {
			return Properties{}
		}
		return fullProps(kindBit(t))
	}
	var willProps Properties
	if v5 {
		willProps = fullProps(kindWill)
	}
	name := "MQTT"
	if v == Version31 {
		name = "MQIsdp"
	}
	ps := []Packet{
		&Connect{ProtocolName: name, ProtocolVersion: v, ClientID: "c"},
		&Connect{ProtocolName: name, ProtocolVersion: v, CleanStart: true, KeepAlive: 65535, ClientID: "",
			Username: "user", HasUsername: true, Password: []byte{0, 1, 2}, HasPassword: true,
			Will:       &Will{Topic: "will/topic", Payload: []byte("bye"), QoS: 2, Retain: true, Properties: willProps},
			Properties: props(CONNECT)},
		&Connect{ProtocolName: name, ProtocolVersion: v, ClientID: "empty-creds", HasUsername: true, HasPassword: true,
			Will: &Will{Topic: "w", QoS: 1}},
		&Connack{},
		&Connack{SessionPresent: true, Properties: props(CONNACK)},
		&Connack{ReasonCode: NotAuthorized},
		&Connack{ReasonCode: UnsupportedProtocolVersion},
		&Publish{Topic: "a"},
		&Publish{Topic: "a/b/ü", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("hello")},
		&Publish{Topic: "x", QoS: 2, PacketID: 65535, Dup: true, Payload: bytes.Repeat([]byte{0}, 300),
			Properties: props(PUBLISH)},
		&Puback{PacketID: 1},
		&Pubrec{PacketID: 2},
		&Pubrel{PacketID: 3},
		&Pubcomp{PacketID: 4},
		&Subscribe{PacketID: 5, Subscriptions: []SubscribeOption{{Filter: "a/+/#", QoS: 2}}},
		&Subscribe{PacketID: 6, Properties: props(SUBSCRIBE), Subscriptions: []SubscribeOption{
			{Filter: "a", QoS: 0}, {Filter: "b/#", QoS: 1}, {Filter: "$share/g/c", QoS: 2}}},
		&Suback{PacketID: 7, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError}},
		&Unsubscribe{PacketID: 8, Filters: []string{"a"}},
		&Unsubscribe{PacketID: 9, Filters: []string{"a/+", "#", "é"}, Properties: props(UNSUBSCRIBE)},
		&Unsuback{PacketID: 10, ReasonCodes: v5codes(v5, NoSubscriptionExisted)},
		&Pingreq{},
		&Pingresp{},
		&Disconnect{},
	}
	if v5 {
		ps = append(ps,
			&Connack{ReasonCode: Banned, Properties: Properties{ReasonString: "go away", ServerReference: "elsewhere"}},
			&Puback{PacketID: 11, ReasonCode: NoMatchingSubscribers},
			&Puback{PacketID: 12, ReasonCode: QuotaExceeded, Properties: props(PUBACK)},
			&Puback{PacketID: 13, Properties: Properties{User: []UserProperty{{"a", "b"}}}},
			&Pubrec{PacketID: 14, ReasonCode: PayloadFormatInvalid, Properties: props(PUBREC)},
			&Pubrel{PacketID: 15, ReasonCode: PacketIDNotFound, Properties: props(PUBREL)},
			&Pubcomp{PacketID: 16, ReasonCode: PacketIDNotFound, Properties: props(PUBCOMP)},
			&Publish{Topic: "", QoS: 1, PacketID: 17, Properties: Properties{TopicAlias: p16(3)}},
			&Subscribe{PacketID: 18, Subscriptions: []SubscribeOption{
				{Filter: "n", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "m", RetainHandling: 1}}},
			&Suback{PacketID: 19, Properties: props(SUBACK), ReasonCodes: []ReasonCode{
				GrantedQoS1, NotAuthorized, TopicFilterInvalid, SharedSubNotSupported, SubIDNotSupported,
				WildcardSubNotSupported, QuotaExceeded, ImplementationSpecific, PacketIDInUse}},
			&Unsuback{PacketID: 20, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}},
			&Unsuback{PacketID: 21, Properties: props(UNSUBACK), ReasonCodes: []ReasonCode{NotAuthorized}},
			&Disconnect{ReasonCode: DisconnectWithWill},
			&Disconnect{ReasonCode: SessionTakenOver, Properties: props(DISCONNECT)},
			&Auth{},
			&Auth{ReasonCode: ContinueAuthentication, Properties: props(AUTH)},
			&Auth{ReasonCode: ReAuthenticate, Properties: Properties{AuthMethod: "m"}},
		)
	}
	return ps
}

// v5codes returns codes for 5.0 and nil for 3.1.1, where UNSUBACK has
// none.
func v5codes(v5 bool, codes ...ReasonCode) []ReasonCode {
	if v5 {
		return codes
	}
	return nil
}

// readVersion is the version argument ReadPacket needs for p on a
// connection at level v: CONNECT is read before the level is known.
func readVersion(p Packet, v byte) byte {
	if p.Type() == CONNECT {
		return 0
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []byte{Version31, Version311, Version5} {
		for i, p := range samples(v) {
			t.Run(fmt.Sprintf("v%d/%d-%s", v, i, p.Type()), func(t *testing.T) {
				b, err := Encode(nil, p, v)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				r := reader(b)
				got, err := ReadPacket(r, readVersion(p, v), uint32(len(b)))
				if err != nil {
					t.Fatalf("ReadPacket(% x): %v", b, err)
				}
				if _, err := r.ReadByte(); err != io.EOF {
					t.Fatalf("ReadPacket left bytes unread")
				}
				if !reflect.DeepEqual(got, p) {
					t.Fatalf("round trip mismatch\n got %#v\nwant %#v", got, p)
				}
				// A packet exactly one byte over maxSize is refused.
				if _, err := ReadPacket(reader(b), readVersion(p, v), uint32(len(b)-1)); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("maxSize len-1: got %v, want ErrTooLarge", err)
				}
			})
		}
	}
}

// TestReadStream reads several packets back to back from one reader, as
// the broker does on a connection.
func TestReadStream(t *testing.T) {
	var b []byte
	ps := samples(Version5)[3:] // skip CONNECTs: they need version 0
	for _, p := range ps {
		var err error
		if b, err = Encode(b, p, Version5); err != nil {
			t.Fatal(err)
		}
	}
	r := reader(b)
	for i, want := range ps {
		got, err := ReadPacket(r, Version5, 0)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("packet %d mismatch", i)
		}
	}
	if _, err := ReadPacket(r, Version5, 0); err != io.EOF {
		t.Fatalf("at end: got %v, want io.EOF", err)
	}
}

func hexBytes(s string) []byte {
	var b []byte
	for _, f := range strings.Fields(s) {
		var c byte
		if _, err := fmt.Sscanf(f, "%02x", &c); err != nil {
			panic(err)
		}
		b = append(b, c)
	}
	return b
}

// TestGolden checks encodings byte for byte against the specifications'
// examples and hand-assembled packets, in both directions.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		v    byte
		p    Packet
		hex  string
	}{
		// 3.1.1 section 3.1: CONNECT with clean session, keep alive 60, client "a".
		{"connect 3.1.1", Version311, &Connect{ProtocolName: "MQTT", ProtocolVersion: 4, CleanStart: true, KeepAlive: 60, ClientID: "a"},
			"10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61"},
		// 3.1.1 figure 3.6 flags: user name, password, will QoS 1, will flag, clean session = 0xCE; keep alive 10.
		{"connect 3.1.1 flags 0xCE", Version311, &Connect{ProtocolName: "MQTT", ProtocolVersion: 4, CleanStart: true, KeepAlive: 10,
			ClientID: "c", Username: "u", HasUsername: true, Password: []byte("p"), HasPassword: true,
			Will: &Will{Topic: "t", Payload: []byte("m"), QoS: 1}},
			"10 19 00 04 4d 51 54 54 04 ce 00 0a 00 01 63 00 01 74 00 01 6d 00 01 75 00 01 70"},
		{"connect 3.1", Version31, &Connect{ProtocolName: "MQIsdp", ProtocolVersion: 3, ClientID: "a"},
			"10 0f 00 06 4d 51 49 73 64 70 03 00 00 00 00 01 61"},
		// 5.0 section 3.1.2.12 example: level 5, flags 0xCE, keep alive 10, properties: session expiry 10.
		{"connect 5.0", Version5, &Connect{ProtocolName: "MQTT", ProtocolVersion: 5, CleanStart: true, KeepAlive: 10,
			ClientID: "c", Username: "u", HasUsername: true, Password: []byte("p"), HasPassword: true,
			Will: &Will{Topic: "t", Payload: []byte("m"), QoS: 1}, Properties: Properties{SessionExpiry: p32(10)}},
			"10 20 00 04 4d 51 54 54 05 ce 00 0a 05 11 00 00 00 0a 00 01 63 00 00 01 74 00 01 6d 00 01 75 00 01 70"},
		{"connack 3.1.1 accepted", Version311, &Connack{}, "20 02 00 00"},
		{"connack 3.1.1 session present", Version311, &Connack{SessionPresent: true}, "20 02 01 00"},
		{"connack 3.1.1 not authorized", Version311, &Connack{ReasonCode: NotAuthorized}, "20 02 00 05"},
		{"connack 5.0", Version5, &Connack{}, "20 03 00 00 00"},
		{"connack 5.0 refused", Version5, &Connack{ReasonCode: BadUsernameOrPassword}, "20 03 00 86 00"},
		{"publish 3.1.1 qos1", Version311, &Publish{Topic: "a/b", QoS: 1, PacketID: 10, Payload: []byte("hi")},
			"32 09 00 03 61 2f 62 00 0a 68 69"},
		// 5.0 section 1.5.4 example string "A\U0002A6D4" = 00 05 41 F0 AA 9B 94.
		{"publish utf-8 topic", Version311, &Publish{Topic: "A\U0002A6D4", Retain: true},
			"31 07 00 05 41 f0 aa 9b 94"},
		{"publish 5.0 props", Version5, &Publish{Topic: "t", Payload: []byte("x"),
			Properties: Properties{MessageExpiry: p32(60), User: []UserProperty{{"k", "v"}}}},
			"30 11 00 01 74 0c 02 00 00 00 3c 26 00 01 6b 00 01 76 78"},
		{"publish 5.0 dup qos2 sub ids", Version5, &Publish{Topic: "t", QoS: 2, Dup: true, PacketID: 1,
			Properties: Properties{SubscriptionIDs: []uint32{1, 128}}},
			"3c 0b 00 01 74 00 01 05 0b 01 0b 80 01"},
		{"puback 3.1.1", Version311, &Puback{PacketID: 10}, "40 02 00 0a"},
		{"puback 5.0 short", Version5, &Puback{PacketID: 10}, "40 02 00 0a"},
		{"puback 5.0 reason", Version5, &Puback{PacketID: 10, ReasonCode: NoMatchingSubscribers}, "40 03 00 0a 10"},
		{"pubrec 5.0 reason string", Version5, &Pubrec{PacketID: 1, ReasonCode: QuotaExceeded, Properties: Properties{ReasonString: "q"}},
			"50 08 00 01 97 04 1f 00 01 71"},
		{"pubrel", Version311, &Pubrel{PacketID: 1}, "62 02 00 01"},
		{"pubcomp", Version5, &Pubcomp{PacketID: 1}, "70 02 00 01"},
		// 3.1.1 section 3.8.3: SUBSCRIBE example, "a/b" QoS 1 and "c/d" QoS 2, packet id 10.
		{"subscribe 3.1.1", Version311, &Subscribe{PacketID: 10, Subscriptions: []SubscribeOption{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}},
			"82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02"},
		{"subscribe 5.0 options", Version5, &Subscribe{PacketID: 10, Properties: Properties{SubscriptionIDs: []uint32{5}},
			Subscriptions: []SubscribeOption{{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			"82 09 00 0a 02 0b 05 00 01 61 2d"},
		// 3.1.1 section 3.9.3: SUBACK example return codes 0, 2, 0x80.
		{"suback 3.1.1", Version311, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, UnspecifiedError}},
			"90 05 00 0a 00 02 80"},
		{"suback 5.0", Version5, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS1, NotAuthorized}},
			"90 05 00 0a 00 01 87"},
		// 3.1.1 section 3.10.3: UNSUBSCRIBE example "a/b", "c/d".
		{"unsubscribe 3.1.1", Version311, &Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
			"a2 0c 00 0a 00 03 61 2f 62 00 03 63 2f 64"},
		{"unsuback 3.1.1", Version311, &Unsuback{PacketID: 10}, "b0 02 00 0a"},
		{"unsuback 5.0", Version5, &Unsuback{PacketID: 10, ReasonCodes: []ReasonCode{NoSubscriptionExisted}}, "b0 04 00 0a 00 11"},
		{"pingreq", Version311, &Pingreq{}, "c0 00"},
		{"pingresp", Version5, &Pingresp{}, "d0 00"},
		{"disconnect 3.1.1", Version311, &Disconnect{}, "e0 00"},
		{"disconnect 5.0 normal", Version5, &Disconnect{}, "e0 00"},
		{"disconnect 5.0 reason", Version5, &Disconnect{ReasonCode: SessionTakenOver}, "e0 01 8e"},
		{"disconnect 5.0 session expiry", Version5, &Disconnect{Properties: Properties{SessionExpiry: p32(0)}},
			"e0 07 00 05 11 00 00 00 00"},
		{"auth 5.0", Version5, &Auth{}, "f0 00"},
		{"auth 5.0 continue", Version5, &Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "m", AuthData: []byte{1}}},
			"f0 0a 18 08 15 00 01 6d 16 00 01 01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := hexBytes(tt.hex)
			got, err := Encode(nil, tt.p, tt.v)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode\n got % x\nwant % x", got, want)
			}
			p, err := ReadPacket(reader(want), readVersion(tt.p, tt.v), 0)
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if !reflect.DeepEqual(p, tt.p) {
				t.Fatalf("ReadPacket\n got %#v\nwant %#v", p, tt.p)
			}
		})
	}
}

// TestRemainingLength checks the variable byte integer boundaries of
// table 1.5.5 of the specification.
func TestRemainingLength(t *testing.T) {
	for _, tt := range []struct {
		v   uint32
		hex string
	}{
		{0, "00"}, {127, "7f"}, {128, "80 01"}, {16383, "ff 7f"}, {16384, "80 80 01"},
		{2097151, "ff ff 7f"}, {2097152, "80 80 80 01"}, {268435455, "ff ff ff 7f"},
	} {
		want := hexBytes(tt.hex)
		if got := appendVBI(nil, tt.v); !bytes.Equal(got, want) {
			t.Errorf("appendVBI(%d) = % x, want % x", tt.v, got, want)
		}
		if vbiLen(tt.v) != len(want) {
			t.Errorf("vbiLen(%d) = %d, want %d", tt.v, vbiLen(tt.v), len(want))
		}
		v, n, err := readRemainingLength(reader(want))
		if err != nil || v != tt.v || n != len(want) {
			t.Errorf("readRemainingLength(% x) = %d, %d, %v", want, v, n, err)
		}
	}
	// A real packet with a multi-byte remaining length.
	p := &Publish{Topic: "t", Payload: make([]byte, 20000)}
	b, err := Encode(nil, p, Version311)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:4], []byte{0x30, 0xa3, 0x9c, 0x01}) { // 20003
		t.Fatalf("header % x", b[:4])
	}
	got, err := ReadPacket(reader(b), Version311, 0)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("ReadPacket: %v", err)
	}
}

// connectBytes assembles a 5.0 CONNECT body around flags, properties and
// payload, for malformed-input cases.
func connectBytes(level byte, flags byte, props string, payload string) []byte {
	name := "00 04 4d 51 54 54"
	if level == 3 {
		name = "00 06 4d 51 49 73 64 70"
	}
	body := hexBytes(name)
	body = append(body, level, flags, 0, 10)
	if level == 5 {
		pb := hexBytes(props)
		body = appendVBI(body, uint32(len(pb)))
		body = append(body, pb...)
	}
	body = append(body, hexBytes(payload)...)
	return append(appendVBI([]byte{0x10}, uint32(len(body))), body...)
}

// withBody assembles a packet from a first byte and a body.
func withBody(b0 byte, body string) []byte {
	bb := hexBytes(body)
	return append(appendVBI([]byte{b0}, uint32(len(bb))), bb...)
}

func TestMalformed(t *testing.T) {
	const (
		v4 = Version311
		v5 = Version5
	)
	cid := "00 01 63" // client id "c"
	tests := []struct {
		name string
		v    byte
		in   []byte
		want ReasonCode
	}{
		// Fixed header.
		{"type 0", v4, hexBytes("00 00"), MalformedPacket},
		{"type 0 before connect", 0, hexBytes("00 00"), MalformedPacket},
		{"auth in 3.1.1", v4, hexBytes("f0 00"), MalformedPacket},
		{"publish before connect", 0, hexBytes("30 03 00 01 74"), ProtocolError},
		{"pingreq before connect", 0, hexBytes("c0 00"), ProtocolError},
		{"publish qos 3", v4, hexBytes("36 05 00 01 74 00 01"), MalformedPacket},
		{"publish qos 3 v5", v5, hexBytes("36 06 00 01 74 00 01 00"), MalformedPacket},
		{"publish dup qos 0 v5", v5, hexBytes("38 04 00 01 74 00"), MalformedPacket},
		{"pubrel flags 0000", v4, hexBytes("60 02 00 01"), MalformedPacket},
		{"subscribe flags 0000", v4, hexBytes("80 06 00 01 00 01 61 00"), MalformedPacket},
		{"unsubscribe flags 0011", v4, hexBytes("a3 05 00 01 00 01 61"), MalformedPacket},
		{"puback flags 0010", v4, hexBytes("42 02 00 01"), MalformedPacket},
		{"connect flags 0001", 0, hexBytes("11 00"), MalformedPacket},
		{"pingreq flags", v5, hexBytes("c1 00"), MalformedPacket},
		{"disconnect flags", v5, hexBytes("e8 00"), MalformedPacket},
		{"remaining length 5 bytes", v4, hexBytes("c0 ff ff ff ff 01"), MalformedPacket},
		{"remaining length overlong 80 00", v4, hexBytes("c0 80 00"), MalformedPacket},
		{"remaining length overlong ff 80 00", v4, hexBytes("30 ff 80 00"), MalformedPacket},
		{"unknown version argument", 6, hexBytes("c0 00"), UnsupportedProtocolVersion},

		// CONNECT.
		{"connect bad name", 0, append(hexBytes("10 0d 00 04 4d 51 54 74 04 02 00 3c"), hexBytes(cid)...), UnsupportedProtocolVersion},
		{"connect level 6", 0, connectBytes(6, 0, "", cid), UnsupportedProtocolVersion},
		{"connect MQTT level 3", 0, append(hexBytes("10 0d 00 04 4d 51 54 54 03 02 00 3c"), hexBytes(cid)...), UnsupportedProtocolVersion},
		{"connect MQIsdp level 4", 0, append(hexBytes("10 0f 00 06 4d 51 49 73 64 70 04 02 00 3c"), hexBytes(cid)...), UnsupportedProtocolVersion},
		{"connect reserved flag", 0, connectBytes(4, 0x03, "", cid), MalformedPacket},
		{"connect reserved flag v5", 0, connectBytes(5, 0x01, "", cid), MalformedPacket},
		{"connect will qos without will", 0, connectBytes(4, 0x08, "", cid), MalformedPacket},
		{"connect will retain without will", 0, connectBytes(5, 0x20, "", cid), MalformedPacket},
		{"connect will qos 3", 0, connectBytes(4, 0x1C, "", cid+" 00 01 74 00 00"), MalformedPacket},
		{"connect password without user 3.1.1", 0, connectBytes(4, 0x40, "", cid+" 00 01 70"), ProtocolError},
		{"connect password without user 3.1", 0, connectBytes(3, 0x40, "", cid+" 00 01 70"), ProtocolError},
		{"connect missing client id", 0, connectBytes(4, 0, "", ""), MalformedPacket},
		{"connect truncated will", 0, connectBytes(4, 0x04, "", cid+" 00 01 74"), MalformedPacket},
		{"connect missing user name", 0, connectBytes(4, 0x80, "", cid), MalformedPacket},
		{"connect trailing byte", 0, connectBytes(4, 0, "", cid+" 00"), MalformedPacket},
		{"connect client id NUL", 0, connectBytes(4, 0, "", "00 01 00"), MalformedPacket},
		{"connect client id invalid utf-8", 0, connectBytes(4, 0, "", "00 02 c3 28"), MalformedPacket},
		{"connect client id surrogate", 0, connectBytes(4, 0, "", "00 03 ed a0 80"), MalformedPacket},
		{"connect client id overlong utf-8", 0, connectBytes(4, 0, "", "00 02 c0 af"), MalformedPacket},
		{"connect user name invalid utf-8", 0, connectBytes(5, 0x80, "", cid+" 00 01 ff"), MalformedPacket},
		{"connect will topic NUL", 0, connectBytes(4, 0x04, "", cid+" 00 01 00 00 00"), MalformedPacket},
		{"connect string length beyond packet", 0, connectBytes(4, 0, "", "00 05 63"), MalformedPacket},
		{"connect props length beyond packet", 0, append(hexBytes("10 0b 00 04 4d 51 54 54 05 02 00 3c 09"), 0), MalformedPacket},
		{"connect props length 5 bytes", 0, withBody(0x10, "00 04 4d 51 54 54 05 00 00 0a ff ff ff ff 01 00 01 63"), MalformedPacket},

		// Properties.
		{"prop not allowed in connect", 0, connectBytes(5, 0, "23 00 01", cid), MalformedPacket},
		{"prop unknown id", 0, connectBytes(5, 0, "04 00", cid), MalformedPacket},
		{"prop id 0", 0, connectBytes(5, 0, "00", cid), MalformedPacket},
		{"prop id overlong vbi", 0, connectBytes(5, 0, "91 00 00 00 00 00", cid), MalformedPacket},
		{"prop duplicate session expiry", 0, connectBytes(5, 0, "11 00 00 00 01 11 00 00 00 02", cid), ProtocolError},
		{"prop duplicate receive maximum", 0, connectBytes(5, 0, "21 00 01 21 00 01", cid), ProtocolError},
		{"prop duplicate auth method", 0, connectBytes(5, 0, "15 00 01 61 15 00 01 61", cid), ProtocolError},
		{"prop receive maximum 0", 0, connectBytes(5, 0, "21 00 00", cid), ProtocolError},
		{"prop maximum packet size 0", 0, connectBytes(5, 0, "27 00 00 00 00", cid), ProtocolError},
		{"prop request problem info 2", 0, connectBytes(5, 0, "17 02", cid), ProtocolError},
		{"prop request response info 2", 0, connectBytes(5, 0, "19 02", cid), ProtocolError},
		{"prop auth data without method", 0, connectBytes(5, 0, "16 00 01 01", cid), ProtocolError},
		{"prop auth data with empty method", 0, connectBytes(5, 0, "15 00 00 16 00 01 01", cid), ProtocolError},
		{"prop truncated u32", 0, connectBytes(5, 0, "11 00 00", cid), MalformedPacket},
		{"prop user property invalid utf-8", 0, connectBytes(5, 0, "26 00 01 ff 00 00", cid), MalformedPacket},
		{"prop user property missing value", 0, connectBytes(5, 0, "26 00 01 61", cid), MalformedPacket},
		{"will prop not allowed", 0, connectBytes(5, 0x04, "", cid+" 03 11 00 00 00 00 01 74 00 00"), MalformedPacket},
		{"will prop payload format 2", 0, connectBytes(5, 0x04, "", cid+" 02 01 02 00 01 74 00 00"), ProtocolError},
		{"will prop duplicate will delay", 0, connectBytes(5, 0x04, "", cid+" 0a 18 00 00 00 01 18 00 00 00 01 00 01 74 00 00"), ProtocolError},
		{"publish topic alias 0", v5, hexBytes("30 07 00 01 74 03 23 00 00"), ProtocolError},
		{"publish subscription id 0", v5, hexBytes("30 06 00 01 74 02 0b 00"), ProtocolError},
		{"publish subscription id overlong", v5, hexBytes("30 07 00 01 74 03 0b 81 00"), MalformedPacket},
		{"publish subscription id 5 bytes", v5, hexBytes("30 0a 00 01 74 06 0b 81 81 81 81 01"), MalformedPacket},
		{"publish duplicate message expiry", v5, hexBytes("30 0e 00 01 74 0a 02 00 00 00 01 02 00 00 00 01"), ProtocolError},
		{"publish session expiry not allowed", v5, hexBytes("30 09 00 01 74 05 11 00 00 00 01"), MalformedPacket},
		{"publish will delay not allowed", v5, hexBytes("30 09 00 01 74 05 18 00 00 00 01"), MalformedPacket},
		{"publish content type NUL", v5, hexBytes("30 08 00 01 74 04 03 00 01 00"), MalformedPacket},
		{"subscribe two subscription ids", v5, hexBytes("82 0b 00 01 04 0b 01 0b 02 00 01 61 00"), ProtocolError},
		{"connack maximum qos 2", v5, hexBytes("20 05 00 00 02 24 02"), ProtocolError},
		{"connack retain available 2", v5, hexBytes("20 05 00 00 02 25 02"), ProtocolError},
		{"connack wildcard available 2", v5, hexBytes("20 05 00 00 02 28 02"), ProtocolError},
		{"connack sub id available 2", v5, hexBytes("20 05 00 00 02 29 02"), ProtocolError},
		{"connack shared available 2", v5, hexBytes("20 05 00 00 02 2a 02"), ProtocolError},
		{"connack topic alias prop", v5, hexBytes("20 06 00 00 03 23 00 01"), MalformedPacket},
		{"puback user prop then content type", v5, hexBytes("40 0c 00 01 00 08 26 00 00 00 00 03 00 00"), MalformedPacket},
		{"disconnect session expiry twice", v5, hexBytes("e0 0c 00 0a 11 00 00 00 00 11 00 00 00 00"), ProtocolError},
		{"auth reason string twice", v5, hexBytes("f0 0a 18 08 1f 00 01 61 1f 00 01 61"), ProtocolError},

		// CONNACK.
		{"connack 3.1.1 reserved flags", v4, hexBytes("20 02 02 00"), MalformedPacket},
		{"connack 3.1.1 return code 6", v4, hexBytes("20 02 00 06"), MalformedPacket},
		{"connack 3.1.1 session present refused", v4, hexBytes("20 02 01 05"), ProtocolError},
		{"connack 3.1.1 long", v4, hexBytes("20 03 00 00 00"), MalformedPacket},
		{"connack 3.1.1 short", v4, hexBytes("20 01 00"), MalformedPacket},
		{"connack 5.0 bad reason", v5, hexBytes("20 03 00 01 00"), ProtocolError},
		{"connack 5.0 session present refused", v5, hexBytes("20 03 01 87 00"), ProtocolError},
		{"connack 5.0 missing props", v5, hexBytes("20 02 00 00"), MalformedPacket},

		// PUBLISH.
		{"publish packet id 0", v4, hexBytes("32 05 00 01 74 00 00"), ProtocolError},
		{"publish missing packet id", v4, hexBytes("32 04 00 01 74 00"), MalformedPacket},
		{"publish empty topic 3.1.1", v4, hexBytes("30 02 00 00"), ProtocolError},
		{"publish empty topic no alias 5.0", v5, hexBytes("30 03 00 00 00"), ProtocolError},
		{"publish topic invalid utf-8", v4, hexBytes("30 04 00 02 e2 82"), MalformedPacket},
		{"publish topic NUL", v4, hexBytes("30 05 00 03 61 00 62"), MalformedPacket},
		{"publish missing props 5.0", v5, hexBytes("30 03 00 01 74"), MalformedPacket},
		{"publish topic beyond packet", v4, hexBytes("30 03 00 05 74"), MalformedPacket},

		// Acknowledgements.
		{"puback packet id 0", v4, hexBytes("40 02 00 00"), ProtocolError},
		{"puback short", v4, hexBytes("40 01 00"), MalformedPacket},
		{"puback 3.1.1 reason code", v4, hexBytes("40 03 00 01 00"), MalformedPacket},
		{"puback 5.0 bad reason", v5, hexBytes("40 03 00 01 92"), ProtocolError},
		{"pubrec 5.0 bad reason", v5, hexBytes("50 03 00 01 01"), ProtocolError},
		{"pubrel 5.0 bad reason", v5, hexBytes("62 03 00 01 10"), ProtocolError},
		{"pubcomp 5.0 bad reason", v5, hexBytes("70 03 00 01 80"), ProtocolError},
		{"puback 5.0 props beyond packet", v5, hexBytes("40 04 00 01 00 05"), MalformedPacket},
		{"puback 5.0 trailing", v5, hexBytes("40 05 00 01 00 00 00"), MalformedPacket},
		{"pubrel 3.1.1 trailing", v4, hexBytes("62 03 00 01 00"), MalformedPacket},

		// SUBSCRIBE.
		{"subscribe no filters 3.1.1", v4, hexBytes("82 02 00 01"), ProtocolError},
		{"subscribe no filters 5.0", v5, hexBytes("82 03 00 01 00"), ProtocolError},
		{"subscribe packet id 0", v4, hexBytes("82 06 00 00 00 01 61 00"), ProtocolError},
		{"subscribe qos 3 3.1.1", v4, hexBytes("82 06 00 01 00 01 61 03"), MalformedPacket},
		{"subscribe reserved bits 3.1.1", v4, hexBytes("82 06 00 01 00 01 61 04"), MalformedPacket},
		{"subscribe qos 3 5.0", v5, hexBytes("82 07 00 01 00 00 01 61 03"), ProtocolError},
		{"subscribe retain handling 3", v5, hexBytes("82 07 00 01 00 00 01 61 30"), ProtocolError},
		{"subscribe reserved bits 5.0", v5, hexBytes("82 07 00 01 00 00 01 61 40"), MalformedPacket},
		{"subscribe reserved bit 7 5.0", v5, hexBytes("82 07 00 01 00 00 01 61 80"), MalformedPacket},
		{"subscribe missing options", v4, hexBytes("82 05 00 01 00 01 61"), MalformedPacket},
		{"subscribe filter invalid utf-8", v4, hexBytes("82 06 00 01 00 01 80 00"), MalformedPacket},
		{"subscribe props not allowed", v5, hexBytes("82 0b 00 01 04 1f 00 01 61 00 01 61 00"), MalformedPacket},

		// SUBACK, UNSUBSCRIBE, UNSUBACK.
		{"suback no codes", v4, hexBytes("90 02 00 01"), ProtocolError},
		{"suback 3.1.1 code 3", v4, hexBytes("90 03 00 01 03"), MalformedPacket},
		{"suback 3.1.1 code 0x87", v4, hexBytes("90 03 00 01 87"), MalformedPacket},
		{"suback 5.0 bad code", v5, hexBytes("90 04 00 01 00 03"), ProtocolError},
		{"unsubscribe no filters", v4, hexBytes("a2 02 00 01"), ProtocolError},
		{"unsubscribe no filters 5.0", v5, hexBytes("a2 03 00 01 00"), ProtocolError},
		{"unsubscribe truncated filter", v4, hexBytes("a2 05 00 01 00 02 61"), MalformedPacket},
		{"unsubscribe filter NUL", v5, hexBytes("a2 06 00 01 00 00 01 00"), MalformedPacket},
		{"unsuback 3.1.1 payload", v4, hexBytes("b0 03 00 01 00"), MalformedPacket},
		{"unsuback 5.0 no codes", v5, hexBytes("b0 03 00 01 00"), ProtocolError},
		{"unsuback 5.0 bad code", v5, hexBytes("b0 04 00 01 00 02"), ProtocolError},

		// PING, DISCONNECT, AUTH.
		{"pingreq with body", v4, hexBytes("c0 01 00"), MalformedPacket},
		{"pingresp with body", v5, hexBytes("d0 01 00"), MalformedPacket},
		{"disconnect 3.1.1 with body", v4, hexBytes("e0 01 00"), MalformedPacket},
		{"disconnect 5.0 bad reason", v5, hexBytes("e0 01 01"), ProtocolError},
		{"disconnect 5.0 props beyond packet", v5, hexBytes("e0 02 00 01"), MalformedPacket},
		{"disconnect 5.0 prop not allowed", v5, hexBytes("e0 04 00 02 23 00"), MalformedPacket},
		{"auth bad reason", v5, hexBytes("f0 01 87"), ProtocolError},
		{"auth trailing", v5, hexBytes("f0 03 18 00 00"), MalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ReadPacket(reader(tt.in), tt.v, 0)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("ReadPacket(% x) = %#v, %v; want *Error with %v", tt.in, p, err, tt.want)
			}
			if pe.Code != tt.want {
				t.Fatalf("ReadPacket(% x): %v; want code %v", tt.in, err, tt.want)
			}
			if !errors.Is(err, &Error{Code: tt.want}) {
				t.Fatalf("errors.Is does not match the code")
			}
		})
	}
}

func TestErrorsIs(t *testing.T) {
	_, err := ReadPacket(reader(hexBytes("00 00")), Version311, 0)
	if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocol) {
		t.Fatalf("malformed: %v", err)
	}
	_, err = ReadPacket(reader(hexBytes("82 02 00 01")), Version311, 0)
	if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrMalformed) {
		t.Fatalf("protocol: %v", err)
	}
	_, err = ReadPacket(reader(hexBytes("10 00")), 0, 1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	_, err = ReadPacket(reader(connectBytes(7, 0, "", "00 00")), 0, 0)
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version: %v", err)
	}
	if !strings.Contains(err.Error(), "CONNECT") || !strings.Contains(err.Error(), "unsupported protocol version") {
		t.Fatalf("message %q lacks context", err.Error())
	}
}

// TestEOF checks that clean and abrupt closes surface as io.EOF and
// io.ErrUnexpectedEOF, unwrapped, and other reader errors pass through.
func TestEOF(t *testing.T) {
	if _, err := ReadPacket(reader(nil), Version311, 0); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	for _, in := range []string{"30", "30 80", "30 05 00 01", "c0 ff ff"} {
		if _, err := ReadPacket(reader(hexBytes(in)), Version311, 0); err != io.ErrUnexpectedEOF {
			t.Fatalf("%s: %v", in, err)
		}
	}
	// Announces a 200 KB body, sends 70 KB: exercises the growing buffer.
	in := append(appendVBI([]byte{0x30}, 200<<10), make([]byte, 70<<10)...)
	if _, err := ReadPacket(reader(in), Version311, 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("large truncated: %v", err)
	}
	boom := errors.New("boom")
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(hexBytes("30 05 00")), errReader{boom}))
	if _, err := ReadPacket(r, Version311, 0); err != boom {
		t.Fatalf("reader error: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestTooLargeBeforeBody checks that an oversized packet is refused from
// its fixed header alone: the reader holds nothing after it.
func TestTooLargeBeforeBody(t *testing.T) {
	_, err := ReadPacket(reader(hexBytes("30 ff ff ff 7f")), Version311, 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	// Exactly at the limit is allowed: 2 header bytes + 3 body bytes.
	p, err := ReadPacket(reader(hexBytes("30 03 00 01 74")), Version311, 5)
	if err != nil || p.(*Publish).Topic != "t" {
		t.Fatalf("at limit: %v", err)
	}
	// The reader must not have consumed the body of a refused packet.
	r := reader(hexBytes("30 03 00 01 74"))
	if _, err := ReadPacket(r, Version311, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	if r.Buffered() != 3 {
		t.Fatalf("body consumed: %d bytes left", r.Buffered())
	}
	// maxSize 0 allows a remaining length at the protocol maximum.
	if _, err := ReadPacket(reader(hexBytes("30 ff ff ff 7f")), Version311, 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("protocol maximum: %v", err)
	}
}

// TestReadAllocationBound checks that a hostile header announcing a huge
// body costs an allocation proportional to what is sent, not announced.
func TestReadAllocationBound(t *testing.T) {
	in := hexBytes("30 ff ff ff 7f 00 01 74")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, err := ReadPacket(reader(in), Version311, 0); err != io.ErrUnexpectedEOF {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRead := (after.TotalAlloc - before.TotalAlloc) / 10; perRead > 1<<18 {
		t.Fatalf("allocated %d bytes per read of an 8-byte input", perRead)
	}
}

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
