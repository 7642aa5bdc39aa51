package broker

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
)

// TestWriteStripped checks that an MQTT 5.0 PUBLISH without properties written
// as 3.1.1 (forVersion, writeStripped) is byte for byte the 3.1.1 encoding, across
// the remaining-length boundaries, and that a message with properties is encoded
// for 3.1.1 instead.
func TestWriteStripped(t *testing.T) {
	for _, qos := range []byte{0, 1, 2} {
		for _, size := range []int{0, 1, 100, 116, 117, 118, 119, 120, 256, 16250, 16260, 70000} {
			for _, dup := range []bool{false, true} {
				pub := &packet.Publish{Topic: "a/" + strings.Repeat("t", 5), QoS: qos, Payload: bytes.Repeat([]byte{'x'}, size)}
				m := newWireMsg(pub, time.Time{})
				if _, err := m.encoded(packet.Version5); err != nil {
					t.Fatal(err)
				}
				b, strip, err := m.forVersion(packet.Version311)
				if err != nil || !strip {
					t.Fatalf("qos %d size %d: forVersion = strip %v, %v; want the stripped 5.0 encoding", qos, size, strip, err)
				}
				var out bytes.Buffer
				bw := bufio.NewWriter(&out)
				const pid = 0x1234
				if err := writeStripped(bw, b, qos, qos > 0, pid, dup); err != nil {
					t.Fatal(err)
				}
				bw.Flush()
				want := *pub
				if qos > 0 {
					want.PacketID, want.Dup = pid, dup
				}
				exp, err := packet.Encode(nil, &want, packet.Version311)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), exp) {
					t.Fatalf("qos %d size %d dup %v: wrote\n% x\nwant\n% x", qos, size, dup, head(out.Bytes()), head(exp))
				}
			}
		}
	}
	ct := "text/plain"
	withProps := newWireMsg(&packet.Publish{Topic: "a", QoS: 1, Payload: []byte("x"), Properties: packet.Properties{ContentType: ct}}, time.Time{})
	withProps.encoded(packet.Version5)
	if _, strip, err := withProps.forVersion(packet.Version311); err != nil || strip {
		t.Fatalf("message with properties: strip %v, %v; want a 3.1.1 encoding", strip, err)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 24)] }
