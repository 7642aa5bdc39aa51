package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// TestTakeoverWaitsForFencedTransaction pins the lock a fence takes: a takeover
// waits for a transaction that passed the fence to end, so a fenced write never
// commits after the takeover that fences it (the SharedStore conformance cases
// can only make that race likely; this makes it certain), and a fence checked after
// the takeover committed is refused. Both forms of the fence are pinned: its own
// statement, and inside the one statement of a fenced Apply of packet writes.
func TestTakeoverWaitsForFencedTransaction(t *testing.T) {
	t.Run("FenceStatement", func(t *testing.T) { testTakeoverWaits(t, postgres.FenceInTx) })
	t.Run("PacketWriteStatement", func(t *testing.T) { testTakeoverWaits(t, postgres.FencedAppendInTx) })
}

func testTakeoverWaits(t *testing.T, fenceInTx func(context.Context, *persistence.Store, pgx.Tx, persistence.Ownership) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := openDSN(t, pgtest.DSN(t))
	if err := s.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 5}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		if _, err := s.Nodes().Renew(ctx, n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	o1, err := s.Sessions().Claim(ctx, "s", "n1")
	if err != nil {
		t.Fatal(err)
	}
	pool := postgres.Pool(s)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if err := fenceInTx(ctx, s, tx, o1); err != nil {
		t.Fatalf("fence of the current ownership: %v", err)
	}
	type result struct {
		o   persistence.Ownership
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := s.Sessions().Takeover(ctx, "s", "n2")
		done <- result{o, err}
	}()
	// Wait until the takeover is blocked on the fence's row lock.
	waiting := `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
		AND strpos(query, $1) > 0 AND query LIKE '%INSERT INTO%'`
	ident := pgx.Identifier{postgres.Schema(s)}.Sanitize() + ".mqtt_owners"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := pool.QueryRow(ctx, waiting, ident).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("Takeover returned (%+v, %v) while a transaction held the fence of the ownership it replaces", r.o, r.err)
		case <-ctx.Done():
			t.Fatal("the takeover never waited for the fenced transaction's lock")
		case <-tick.C:
		}
	}
	select {
	case r := <-done:
		t.Fatalf("Takeover returned (%+v, %v) while it waited for the lock", r.o, r.err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("Takeover did not return after the fenced transaction committed")
	}
	if r.err != nil || r.o.Epoch <= o1.Epoch {
		t.Fatalf("Takeover = %+v, %v; want an epoch above %d", r.o, r.err, o1.Epoch)
	}
	tx2, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx2.Rollback(context.Background()) }()
	if err := fenceInTx(ctx, s, tx2, o1); !errors.Is(err, persistence.ErrFenced) {
		t.Fatalf("fence of the replaced ownership: %v, want ErrFenced", err)
	}
	if err := fenceInTx(ctx, s, tx2, r.o); err != nil {
		t.Fatalf("fence of the new ownership: %v", err)
	}
}
