package archive

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

func sample() []*Record {
	will := &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte{0x32, 3, 0, 1, 'w'}}
	return []*Record{
		{Kind: KindSession, ID: "a\x00b", Base: persistence.SessionBase{CreatedAt: time.Unix(1, 2), ProtocolVersion: 5}},
		{Kind: KindSubscription, ID: "a\x00b", Sub: persistence.Subscription{Filter: "x/#", QoS: 2, NoLocal: true, ID: 9}},
		{Kind: KindState, ID: "a\x00b", State: &persistence.SessionState{ProtocolVersion: 5, Will: will, UserData: []byte("u")}},
		{Kind: KindExpiry, ID: "a\x00b", Expiry: persistence.SessionExpiry{ExpireAt: time.Unix(100, 0)}},
		{Kind: KindPacket, ID: "a\x00b", Class: persistence.ClassQoS12, Packet: &persistence.PersistedPacket{QoS: 1, PacketID: 3, Data: []byte("p1")}},
		{Kind: KindPacket, ID: "a\x00b", Class: persistence.ClassQoS12, Packet: &persistence.PersistedPacket{QoS: 1, PacketID: 4, Data: []byte("p2")}},
		{Kind: KindPacket, ID: "a\x00b", Class: persistence.ClassUnAck, Packet: &persistence.PersistedPacket{QoS: 2, PacketID: 5, Data: []byte("p3")}},
		{Kind: KindRetained, Topic: "t", Packet: &persistence.PersistedPacket{Data: []byte("r")}},
	}
}

func write(t testing.TB, recs []*Record) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{CreatedAt: time.Unix(5, 0).UTC(), SourceDriver: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := write(t, sample())
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header().SourceDriver != "test" || r.Header().Format != Version {
		t.Fatalf("header %+v", r.Header())
	}
	got := Summary{}
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindPacket && rec.Class == persistence.ClassQoS12 && rec.Index != uint64(n-4) {
			t.Fatalf("packet index %d at record %d", rec.Index, n)
		}
		if err := got.Add(rec); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(sample()) || len(r.Trailer().Summary.Diff(got)) != 0 {
		t.Fatalf("%d records, diff %v", n, r.Trailer().Summary.Diff(got))
	}
}

// TestDigestOrder: the digest ignores record order but not queue order.
func TestDigestOrder(t *testing.T) {
	a, b := Summary{}, Summary{}
	recs := sample()
	for _, r := range recs {
		_ = a.Add(r)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		_ = b.Add(recs[i])
	}
	if d := a.Diff(b); len(d) != 0 {
		t.Fatalf("order changed %v", d)
	}
	recs[4].Index, recs[5].Index = 1, 0
	c := Summary{}
	for _, r := range recs {
		_ = c.Add(r)
	}
	if d := a.Diff(c); len(d) != 1 || d[0] != "packets/QoS12" {
		t.Fatalf("swapped queue order: diff %v", d)
	}
}

func TestVersionRefused(t *testing.T) {
	b := write(t, sample())
	b[len(Magic)] = Version + 1
	if _, err := NewReader(bytes.NewReader(b)); !errors.Is(err, ErrVersion) {
		t.Fatalf("newer version: %v", err)
	}
}

// FuzzReader: any input is read to an error or EOF without panicking.
func FuzzReader(f *testing.F) {
	f.Add(write(f, sample()))
	f.Add([]byte(Magic + "\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}
