package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// A bolt file serves one provider (broker) at a time: a second open, in this
// process or another, is refused with persistence.ErrInUse, and the driver is not
// shared (persistence.Store.Shared is false).

func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Shared() {
		t.Error("a bolt store says Shared() = true")
	}
	_, err = p.Nodes().Renew(ctx, "n1", time.Minute)
	if !errors.Is(err, persistence.ErrNotSupported) {
		t.Errorf("Nodes.Renew on a bolt store: %v, want ErrNotSupported", err)
	}
	q, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 50 * time.Millisecond})
	kvtest.CheckInUse(t, q, err, "a bolt file", path, "timeout")
	// Once the first provider is closed, the file opens.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open after the first provider closed: %v", err)
	}
	_ = q.Close()
}

// TestHelperHoldStore is the helper process of TestSecondProcessRefused: with
// kvtest.HoldEnv set it opens that store, creates session "held", prints "ready" and
// keeps the store open until its standard input closes or it is killed.
func TestHelperHoldStore(t *testing.T) {
	kvtest.HoldStore(func(ctx context.Context, p *persistence.Store) error {
		return p.Sessions().Create(ctx, "held", persistence.SessionBase{ProtocolVersion: 5})
	})
}

func TestSecondProcessRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := kvtest.HoldInChild(ctx, t, "bolt://"+path)
	q, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 50 * time.Millisecond})
	kvtest.CheckInUse(t, q, err, "a bolt file", path, "timeout")
	// A killed broker's lock goes with it: the file opens, with its data.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	q, err = persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open after the holding process was killed: %v", err)
	}
	defer q.Close()
	if ok, err := q.Sessions().Exists(ctx, "held"); err != nil || !ok {
		t.Errorf("session created by the killed process: Exists = %v, %v", ok, err)
	}
}
