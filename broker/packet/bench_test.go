package packet

import (
	"bufio"
	"bytes"
	"testing"
)

func benchPublish() *Publish {
	return &Publish{Topic: "sensors/building-7/floor-3/temperature", QoS: 1, PacketID: 4242,
		Payload: bytes.Repeat([]byte{'x'}, 256)}
}

func benchmarkRead(b *testing.B, v byte) {
	buf, err := Encode(nil, benchPublish(), v)
	if err != nil {
		b.Fatal(err)
	}
	src := bytes.NewReader(buf)
	br := bufio.NewReaderSize(src, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(buf)
		br.Reset(src)
		if _, err := ReadPacket(br, v, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkEncode(b *testing.B, v byte) {
	p := benchPublish()
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		out, err := Encode(dst[:0], p, v)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(out)))
	}
}

// BenchmarkReadPublish256 reads a QoS 1 PUBLISH with a 256-byte payload.
// Expected: two allocations, the body (which Payload and Topic share) and
// the *Publish.
func BenchmarkReadPublish256(b *testing.B) {
	b.Run("v3.1.1", func(b *testing.B) { benchmarkRead(b, Version311) })
	b.Run("v5", func(b *testing.B) { benchmarkRead(b, Version5) })
}

// BenchmarkEncodePublish256 encodes the same packet into a reused buffer:
// no allocations.
func BenchmarkEncodePublish256(b *testing.B) {
	b.Run("v3.1.1", func(b *testing.B) { benchmarkEncode(b, Version311) })
	b.Run("v5", func(b *testing.B) { benchmarkEncode(b, Version5) })
}
