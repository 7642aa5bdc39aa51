package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// hungConnector opens a mem store whose LoadForEach never makes progress, as a
// paused database would: it blocks until its context ends.
type hungConnector struct{ inner driver.Connector }

func (h hungConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	c, err := h.inner.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return hungConn{c}, nil
}

type hungConn struct{ driver.Conn }

func (hungConn) LoadForEach(ctx context.Context, _ driver.SessionLoader) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestRestoreStallNamesTheStep(t *testing.T) {
	old := broker.RestoreStallTimeout
	broker.RestoreStallTimeout = 300 * time.Millisecond
	t.Cleanup(func() { broker.RestoreStallTimeout = old })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := persistence.NewConnector("mem://")
	if err != nil {
		t.Fatal(err)
	}
	st, err := persistence.OpenConnector(ctx, hungConnector{c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Sessions().Create(ctx, "a", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	b, err := broker.New(ctx, broker.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		_ = b.Close()
		t.Fatal("New restored from a store that never answers")
	}
	var re *broker.RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("New: %v (%T), want a *broker.RestoreError", err, err)
	}
	// mem has no PacketStatsConn: the SDK counts packets through LoadForEach,
	// which hangs in restore's first step.
	if !strings.Contains(re.Step, "counting packets") || !strings.Contains(err.Error(), re.Step) {
		t.Errorf("RestoreError.Step = %q in %q, want the first step (counting packets), named in the message", re.Step, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("New: %v, want it to match context.DeadlineExceeded", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("New gave up after %s, want about RestoreStallTimeout", d)
	}
}
