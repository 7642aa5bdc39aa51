package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

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
