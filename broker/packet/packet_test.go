package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
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
