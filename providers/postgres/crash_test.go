package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/internal/pgtest"
)

// TestCrash SIGKILLs a child process writing through the driver at least 20 times
// while PostgreSQL stays up, and checks after each kill that nothing acknowledged
// was lost and nothing half-applied is visible (see conformance.RunCrash). The child
// gets the DSN of a fresh schema in its environment.
func TestCrash(t *testing.T) {
	app := fmt.Sprintf("mqttstore-crash-%d", rand.Uint32())
	conformance.RunCrash(t, conformance.CrashHarness{
		NewTarget: func(t testing.TB) string { return pgtest.DSN(t) + "&application_name=" + app },
		// The server notices the dead client's connections on its own, but not
		// at once: a COMMIT the child sent before it died may still be running
		// when the parent looks. Ending those backends (pg_terminate_backend
		// waits for each) makes every commit of the child finish first, either
		// way atomically.
		AfterKill: func(t testing.TB, target string) { endBackends(t, target, app) },
		// 24 kills take about 23 s here, 40 s under -race; the bound leaves room
		// for a loaded machine.
		Budget: 2 * time.Minute,
	})
}

func endBackends(t testing.TB, dsn, app string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("schema")
	q.Set("application_name", "mqttstore-crash-parent")
	u.RawQuery = q.Encode()
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to end the dead child's backends: %v", err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT pid, pg_terminate_backend(pid, 20000) FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		t.Fatalf("end the dead child's backends: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var ok bool
		if err := rows.Scan(&pid, &ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatalf("backend %d of the dead child did not end within 20 s", pid)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("end the dead child's backends: %v", err)
	}
}
