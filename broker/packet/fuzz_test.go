package packet

import (
	"bytes"
	"io"
	"reflect"
	"testing"
)

var fuzzVersions = [...]byte{0, Version31, Version311, Version5}

// FuzzReadPacket feeds arbitrary bytes to ReadPacket at every protocol
// level. It must never panic, and whatever it accepts must survive
// Encode and a second ReadPacket unchanged: that catches decoders that
// accept what the encoder cannot reproduce, and encoders that write what
// the decoder refuses.
func FuzzReadPacket(f *testing.F) {
	for vi, v := range fuzzVersions {
		if v == 0 {
			continue
		}
		for _, p := range samples(v) {
			b, err := Encode(nil, p, v)
			if err != nil {
				f.Fatalf("seed %T v%d: %v", p, v, err)
			}
			if p.Type() == CONNECT {
				f.Add(b, uint8(0))
			} else {
				f.Add(b, uint8(vi))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, vsel uint8) {
		v := fuzzVersions[int(vsel)%len(fuzzVersions)]
		r := reader(data)
		p, err := ReadPacket(r, v, uint32(len(data))+5)
		if err != nil {
			if _, ok := err.(*Error); !ok && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		consumed := len(data) - r.Buffered()
		ev := v
		if c, ok := p.(*Connect); ok {
			ev = c.ProtocolVersion
		}
		enc, err := Encode(nil, p, ev)
		if err != nil {
			t.Fatalf("decoded %#v from % x but Encode failed: %v", p, data, err)
		}
		if len(enc) > consumed {
			t.Fatalf("re-encoding grew the packet: %d > %d bytes", len(enc), consumed)
		}
		r2 := reader(enc)
		p2, err := ReadPacket(r2, v, uint32(len(enc)))
		if err != nil {
			t.Fatalf("re-read of % x (from % x) failed: %v", enc, data[:consumed], err)
		}
		if r2.Buffered() != 0 {
			t.Fatalf("re-read left %d bytes", r2.Buffered())
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip changed the packet\n first %#v\nsecond %#v", p, p2)
		}
		enc2, err := Encode(nil, p2, ev)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: % x vs % x (%v)", enc, enc2, err)
		}
	})
}
