package kvtest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Victim payloads: the corruption test damages the values holding these.
var (
	victimPacket   = []byte("victim packet payload")
	victimRetained = []byte("victim retained payload")
)

// Rewrite is the driver's engine-specific step of the corruption and schema tests:
// with the store closed, it opens the engine directly, calls fn for every stored
// value, writes back the new value wherever fn returns ok, and returns how many it
// wrote. The tests recognise values by decoding them, so a driver needs to know
// nothing of the key layout.
type Rewrite func(fn func(v []byte) (nv []byte, ok bool)) int

// damage flips bits of the victim values, as a bad disk sector would.
func damage(v []byte) ([]byte, bool) {
	p, err := driver.DecodePacket(v)
	if err != nil || !(bytes.Equal(p.Data, victimPacket) || bytes.Equal(p.Data, victimRetained)) {
		return nil, false
	}
	nv := bytes.Clone(v)
	nv[len(nv)/2] ^= 0x5a
	nv[len(nv)-1] ^= 0xff
	return nv, true
}

// Schema opens a store at dsn, rewrites its recorded schema version to one newer
// than this SDK's and checks that opening it again fails with
// persistence.ErrSchemaVersion.
func Schema(t *testing.T, dsn string, rewrite Rewrite) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	info, err := p.Info(ctx)
	if err != nil || info.SchemaVersion != persistence.SchemaVersion {
		t.Fatalf("GetInfo = %+v, %v; want schema version %d", info, err, persistence.SchemaVersion)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	n := rewrite(func(v []byte) ([]byte, bool) {
		info, err := driver.DecodeSystemInfo(v)
		if err != nil {
			return nil, false
		}
		info.SchemaVersion = persistence.SchemaVersion + 1
		return driver.EncodeSystemInfo(nil, info), true
	})
	if n != 1 {
		t.Fatalf("rewrote %d system info records, want 1", n)
	}
	p, err = persistence.Open(ctx, dsn)
	if !errors.Is(err, persistence.ErrSchemaVersion) {
		if p != nil {
			_ = p.Close()
		}
		t.Fatalf("open of a store with a newer schema: %v, want ErrSchemaVersion", err)
	}
}

// Corruption fills a store at dsn with packets and retained messages, closes it,
// damages one packet and one retained message through rewrite, reopens the store
// and checks that the damaged items read as persistence.ErrBrokenEntry while
// everything else still loads, and that the damaged items can be deleted.
func Corruption(t *testing.T, dsn string, rewrite Rewrite) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const id = "corrupt-session"
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ss := p.Sessions()
	if err := ss.Create(ctx, id, persistence.SessionBase{ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 5 {
		data := []byte{byte('a' + i)}
		if i == 2 {
			data = victimPacket
		}
		seq, err := ss.PacketAppend(ctx, id, persistence.ClassUnAck, &persistence.PersistedPacket{QoS: 1, PacketID: uint16(i + 1), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	topics := []string{"t/a", "t/victim", "t/c"}
	for _, topic := range topics {
		data := []byte(topic)
		if topic == "t/victim" {
			data = victimRetained
		}
		if err := p.Retained().Put(ctx, topic, &persistence.PersistedPacket{QoS: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	if n := rewrite(damage); n != 2 {
		t.Fatalf("flip damaged %d values, want 2 (one packet, one retained message)", n)
	}

	p, err = persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("reopen after corruption: %v", err)
	}
	defer p.Close()
	ss = p.Sessions()
	if _, err := ss.PacketGet(ctx, id, persistence.ClassUnAck, seqs[2]); !errors.Is(err, persistence.ErrBrokenEntry) {
		t.Errorf("PacketGet of the damaged packet: %v, want ErrBrokenEntry", err)
	}
	if _, err := ss.PacketGet(ctx, id, persistence.ClassUnAck, seqs[3]); err != nil {
		t.Errorf("PacketGet of an intact packet: %v", err)
	}
	var got []uint64
	err = ss.PacketsForEach(ctx, id, persistence.ClassUnAck, func(pk *persistence.PersistedPacket) (bool, error) {
		got = append(got, pk.Seq)
		return false, nil
	})
	if !errors.Is(err, persistence.ErrBrokenEntry) {
		t.Errorf("PacketsForEach over a damaged packet returned %v, want ErrBrokenEntry", err)
	}
	if want := []uint64{seqs[0], seqs[1], seqs[3], seqs[4]}; !equalSeqs(got, want) {
		t.Errorf("PacketsForEach visited %v, want the intact packets %v", got, want)
	}
	if _, err := p.Retained().Get(ctx, "t/victim"); !errors.Is(err, persistence.ErrBrokenEntry) {
		t.Errorf("Retained.Get of the damaged message: %v, want ErrBrokenEntry", err)
	}
	var loaded []string
	err = p.Retained().Load(ctx, func(m *persistence.RetainedMessage) error {
		loaded = append(loaded, m.Topic)
		return nil
	})
	if !errors.Is(err, persistence.ErrBrokenEntry) || len(loaded) != 2 {
		t.Errorf("Retained.Load = %v, %v; want the 2 intact messages and ErrBrokenEntry", loaded, err)
	}
	n := 0
	if err := ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("LoadForEach = %d sessions, %v; want 1, nil", n, err)
	}
	// A broken item can still be removed, after which everything loads cleanly.
	if err := ss.PacketDelete(ctx, id, persistence.ClassUnAck, seqs[2]); err != nil {
		t.Fatalf("PacketDelete of the damaged packet: %v", err)
	}
	if err := p.Retained().Delete(ctx, "t/victim"); err != nil {
		t.Fatalf("Retained.Delete of the damaged message: %v", err)
	}
	err = ss.PacketsForEach(ctx, id, persistence.ClassUnAck, func(*persistence.PersistedPacket) (bool, error) { return false, nil })
	if err != nil {
		t.Errorf("PacketsForEach after deleting the damaged packet: %v", err)
	}
	if c, err := ss.PacketCount(ctx, id, persistence.ClassUnAck); err != nil || c != 4 {
		t.Errorf("PacketCount = %d, %v; want 4", c, err)
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LongKeys checks that retained topics of any length are stored, found and
// matched (longer ones than the engine's keys hold get a hashed key), that a session
// id too long for the engine's keys is refused as persistence.ErrInvalidArgument,
// leaving the store usable, and that ids and filters of limit bytes are stored.
func LongKeys(t *testing.T, dsn string, limit int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rs := p.Retained()
	long := strings.Repeat("l", 40000) + "/" + strings.Repeat("m", 25534)
	twin := long[:len(long)-1] + "n" // differs only after what a key holds
	for _, topic := range []string{long, twin} {
		if err := rs.Put(ctx, topic, &persistence.PersistedPacket{Data: []byte(topic[len(topic)-1:])}); err != nil {
			t.Fatalf("Put of a %d-byte topic: %v", len(topic), err)
		}
	}
	if pk, err := rs.Get(ctx, twin); err != nil || string(pk.Data) != "n" {
		t.Errorf("Get of a long topic = %v, %v", pk, err)
	}
	var got []string
	err = rs.LoadMatching(ctx, []string{strings.Repeat("l", 40000) + "/+"}, func(m *persistence.RetainedMessage) error {
		got = append(got, m.Topic)
		return nil
	})
	if err != nil || len(got) != 2 || !(got[0] == long || got[1] == long) {
		t.Errorf("LoadMatching found %d topics (%v); want both long topics", len(got), err)
	}
	if err := rs.Delete(ctx, long); err != nil {
		t.Fatal(err)
	}
	if c, err := rs.Count(ctx); err != nil || c != 1 {
		t.Errorf("retained Count = %d, %v; want 1", c, err)
	}
	if err := p.Sessions().Create(ctx, strings.Repeat("x", 70000), persistence.SessionBase{}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Create of a 70000-byte session id = %v, want ErrInvalidArgument", err)
	}
	ok := strings.Repeat("x", limit)
	if err := p.Sessions().Create(ctx, ok, persistence.SessionBase{}); err != nil {
		t.Fatalf("Create of a %d-byte session id: %v", limit, err)
	}
	if err := p.Sessions().SubscriptionsStore(ctx, ok, persistence.Subscription{Filter: ok}); err == nil {
		t.Logf("a %d-byte id with a %d-byte filter fits", limit, limit)
	}
	if err := p.Sessions().SubscriptionsStore(ctx, "x", persistence.Subscription{Filter: ok}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("SubscriptionsStore on a missing session = %v, want ErrNotFound", err)
	}
	if c, err := p.Sessions().Count(ctx); err != nil || c != 1 {
		t.Errorf("Count = %d, %v; want 1", c, err)
	}
	if err := rs.Wipe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Get(ctx, twin); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Get after Wipe = %v, want ErrNotFound", err)
	}
}
