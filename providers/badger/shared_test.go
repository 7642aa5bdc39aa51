package badger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// A Badger directory serves one provider (broker) at a time: a second open, in
// this process or another, is refused with persistence.ErrInUse (not taken for a
// damaged store), and the driver is not shared (persistence.Store.Shared is false).

// fill writes a few sessions with packets, so that a directory in use has files
// that the damage check would read.
func fill(ctx context.Context, p *persistence.Store) error {
	for i := range 20 {
		id := fmt.Sprintf("s%d", i)
		if err := p.Sessions().Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5}); err != nil {
			return err
		}
		for j := range 20 {
			pk := &persistence.PersistedPacket{QoS: 1, PacketID: uint16(j + 1), ProtocolVersion: 5, Data: []byte(strings.Repeat("x", 1000))}
			if _, err := p.Sessions().PacketAppend(ctx, id, persistence.ClassQoS12, pk); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Shared() {
		t.Error("a badger store says Shared() = true")
	}
	if _, err := p.Sessions().Claim(ctx, "s", "n1"); !errors.Is(err, persistence.ErrNotSupported) {
		t.Errorf("Claim on a badger store: %v, want ErrNotSupported", err)
	}
	if err := fill(ctx, p); err != nil {
		t.Fatal(err)
	}
	q, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	kvtest.CheckInUse(t, q, err, "a Badger directory", dir)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatalf("open after the first provider closed: %v", err)
	}
	_ = q.Close()
}

// TestHelperHoldStore is the helper process of TestSecondProcessRefused: with
// kvtest.HoldEnv set it opens that store, writes sessions (fill), prints "ready"
// and keeps the store open until its standard input closes or it is killed.
func TestHelperHoldStore(t *testing.T) { kvtest.HoldStore(fill) }

func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := kvtest.HoldInChild(ctx, t, "badger://"+dir)
	q, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	kvtest.CheckInUse(t, q, err, "a Badger directory", dir)
	// A killed broker's lock goes with it: the directory opens, with its data.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	q, err = persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatalf("open after the holding process was killed: %v", err)
	}
	defer q.Close()
	if n, err := q.Sessions().Count(ctx); err != nil || n != 20 {
		t.Errorf("sessions written by the killed process: Count = %d, %v; want 20", n, err)
	}
}
