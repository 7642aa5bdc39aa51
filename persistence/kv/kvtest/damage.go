package kvtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// The damage tests of the file drivers: a store that held DamageMessages
// acknowledged messages is damaged on disk by the driver's test, then opened and
// read; it must fail with an error, never panic or read garbage silently.

// DamageMessages is how many acknowledged messages a damaged store held.
const DamageMessages = 3000

// FillStore appends n acknowledged packets, "message %06d " and 200 bytes, to
// session "s" of the store at dsn and closes the store: in one persistence.Batch
// when batched, else one PacketAppend each (more, smaller commits).
func FillStore(t *testing.T, dsn string, n int, batched bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	var b persistence.Batch
	for i := range n {
		data := []byte(fmt.Sprintf("message %06d %s", i, strings.Repeat("x", 200)))
		pk := &persistence.PersistedPacket{Data: data, QoS: 1, PacketID: uint16(i%60000 + 1)}
		if batched {
			b.PacketAppend("s", persistence.ClassQoS12, pk)
		} else if _, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, pk); err != nil {
			t.Fatal(err)
		}
	}
	if batched {
		if _, err := p.Sessions().Apply(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// ReadBack opens dsn and reads session "s"'s packets, checking each one's content
// (as FillStore wrote it); a panic fails the test.
func ReadBack(t *testing.T, dsn string) (n int, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("open and read of a damaged store panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	err = p.Sessions().PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		if want := fmt.Sprintf("message %06d ", n); !strings.HasPrefix(string(pk.Data), want) {
			return false, fmt.Errorf("packet %d holds %.20q", n, pk.Data)
		}
		n++
		return false, nil
	})
	return n, err
}

// Damaged fills the store at dsn with DamageMessages packets (FillStore), checks
// that it reads them all back, calls damage, and returns what ReadBack then reads
// (logged); the caller judges it.
func Damaged(t *testing.T, dsn string, batched bool, damage func()) (n int, err error) {
	t.Helper()
	FillStore(t, dsn, DamageMessages, batched)
	if n, err := ReadBack(t, dsn); n != DamageMessages || err != nil {
		t.Fatalf("undamaged store read back %d of %d messages, %v", n, DamageMessages, err)
	}
	damage()
	n, err = ReadBack(t, dsn)
	t.Logf("after damage: %d messages, err %v", n, err)
	return n, err
}
