package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// No error of ParseConfig or Open shows the password or a secret option, whatever
// part of the URL is wrong.
func TestErrorsHideSecrets(t *testing.T) {
	const secret = "s3cr%t-PW"
	esc := url.QueryEscape(secret)
	for _, dsn := range []string{
		"postgres://u:" + esc + "@127.0.0.1:notaport/db",
		"postgres://u:" + esc + "@[::1/db",
		"postgres://u:" + secret + "@127.0.0.1/db",                        // '%' not escaped
		"postgres://u:pa/" + esc + "@127.0.0.1/db",                        // '/' not escaped
		"postgres://u@127.0.0.1:notaport/db?password=" + esc,              // bad port, password option
		"postgres://u@127.0.0.1/db?password=" + esc + "&sslmode=bogus",    // refused by pgx
		"postgres://u@127.0.0.1/db?sslpassword=" + esc + "&sslmode=bogus", // refused by pgx
		"postgres://u:" + esc + "@127.0.0.1/db?sslmode=require&sslcert=/nonexistent&sslkey=/nonexistent&sslpassword=" + esc,
		"postgres://u:" + esc + "@127.0.0.1:1/db?connect_timeout=1", // connection refused
		"postgres://u:" + esc + "@127.0.0.1/db?max_conns=0&password=" + esc,
	} {
		_, perr := postgres.ParseConfig(dsn)
		s, oerr := persistence.Open(testCtx(t, 10*time.Second), dsn)
		if oerr == nil {
			_ = s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		for _, err := range []error{perr, oerr} {
			if err == nil {
				continue
			}
			for _, leak := range []string{secret, esc, "s3cr"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error for %q shows the secret: %v", dsn, err)
				}
			}
		}
		if perr != nil && !errors.Is(perr, persistence.ErrInvalidConfig) {
			t.Errorf("ParseConfig(%q) = %v, want ErrInvalidConfig", dsn, perr)
		}
	}
}

// A store on a pool the program already has: it works in its own schema, and
// Close leaves the pool open.
func TestConfigWithPool(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	ctx := testCtx(t, time.Minute)
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := persistence.OpenConnector(ctx, &postgres.Config{Pool: pool, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	ss := s.Sessions()
	if err := ss.Create(ctx, "c", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.PacketAppend(ctx, "c", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "mqtt_packets"}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("the pool after the store's Close: %v", err)
	}
	if n != 1 {
		t.Fatalf("%d packets in schema %s, want 1", n, schema)
	}
	// Nothing went to the pool's own schema (public).
	var tables int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'mqtt_%'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("%d mqtt_ tables in schema public", tables)
	}
	// Reopened on the same pool, the data is there.
	s, err = persistence.OpenConnector(ctx, &postgres.Config{Pool: pool, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Sessions().PacketCount(ctx, "c", persistence.ClassQoS12); err != nil || c != 1 {
		t.Fatalf("PacketCount after reopening = %d, %v", c, err)
	}
}

// A Config with neither a pool nor a pool configuration is refused.
func TestConfigEmpty(t *testing.T) {
	_, err := persistence.OpenConnector(context.Background(), &postgres.Config{})
	if !errors.Is(err, persistence.ErrInvalidConfig) {
		t.Fatalf("OpenConnector(&Config{}) = %v, want ErrInvalidConfig", err)
	}
}

// commitObserver counts the commits the driver reports.
type commitObserver struct {
	mu      sync.Mutex
	commits []driver.CommitInfo
}

func (o *commitObserver) Begin(ctx context.Context, _ persistence.Call) (context.Context, func(error)) {
	return ctx, func(error) {}
}

func (o *commitObserver) Commit(ci driver.CommitInfo) {
	o.mu.Lock()
	o.commits = append(o.commits, ci)
	o.mu.Unlock()
}

// Every single write is reported in exactly one commit, and concurrent ones share
// commits.
func TestOnCommit(t *testing.T) {
	obs := &commitObserver{}
	s := openDSN(t, pgtest.DSN(t), persistence.WithObserver(obs))
	ctx := testCtx(t, time.Minute)
	const writers, each = 32, 20
	for w := range writers {
		if err := s.Sessions().Create(ctx, fmt.Sprint(w), persistence.SessionBase{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range writers {
		wg.Go(func() {
			for range each {
				if _, err := s.Sessions().PacketAppend(ctx, fmt.Sprint(w), persistence.ClassQoS0, &persistence.PersistedPacket{Data: []byte("x")}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	calls, most := 0, 0
	for _, c := range obs.commits {
		if c.Err != nil || c.Calls < 1 || c.Duration <= 0 {
			t.Fatalf("commit %+v", c)
		}
		calls += c.Calls
		most = max(most, c.Calls)
	}
	if want := writers * (each + 1); calls != want {
		t.Fatalf("commits carried %d calls, want %d", calls, want)
	}
	if most < 2 {
		t.Errorf("no commit carried more than one call (%d commits)", len(obs.commits))
	}
}
