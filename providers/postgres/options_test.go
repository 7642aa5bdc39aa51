package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Bad options are refused before any connection is made, naming the option.
func TestBadOptions(t *testing.T) {
	const base = "postgres://u:pw-secret@127.0.0.1:1/db?"
	cases := map[string]string{
		"unknown":                        "colour=blue",
		"max_conns":                      "max_conns=0",
		"max_conns not a number":         "max_conns=many",
		"pool_max_conns":                 "pool_max_conns=100000",
		"both pool sizes":                "max_conns=2&pool_max_conns=3",
		"connect_timeout":                "connect_timeout=soon",
		"connect_timeout negative":       "connect_timeout=-1s",
		"connect_timeout empty":          "connect_timeout=",
		"synchronous_commit":             "synchronous_commit=maybe",
		"group_commit":                   "group_commit=perhaps",
		"schema empty":                   "schema=",
		"schema too long":                "schema=" + strings.Repeat("s", 64),
		"repeated":                       "schema=a&schema=b",
		"pgx option we do not pass":      "pool_max_conn_lifetime=1h",
		"libpq option we do not know":    "krbsrvname=x",
		"unknown beside good ones":       "schema=a&max_conns=3&frobnicate=1",
		"sync commit beside bad timeout": "synchronous_commit=off&connect_timeout=0",
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := persistence.Open(testCtx(t, 10*time.Second), base+q)
			if err == nil {
				_ = p.Close()
				t.Fatalf("Open(%q) succeeded", q)
			}
			if !errors.Is(err, persistence.ErrInvalidConfig) {
				t.Fatalf("Open(%q) = %v, want ErrInvalidConfig", q, err)
			}
			opt, _, _ := strings.Cut(q, "=")
			if i := strings.LastIndex(q, "&"); i >= 0 && name != "both pool sizes" {
				opt, _, _ = strings.Cut(q[i+1:], "=")
			}
			if !strings.Contains(err.Error(), opt) {
				t.Errorf("Open(%q) = %v: the error does not name %q", q, err, opt)
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("error %v shows the password", err)
			}
		})
	}
}

// An unreachable server fails Open within connect_timeout, with no typed config error.
func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	p, err := persistence.Open(testCtx(t, 20*time.Second), "postgres://u:p@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		_ = p.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if errors.Is(err, persistence.ErrInvalidConfig) {
		t.Fatalf("Open = %v: an unreachable server is not a config error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Open took %v", d)
	}
}

// Every accepted option opens a working store; postgresql:// is the same driver.
func TestGoodOptions(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, extra := range []string{
		"&max_conns=1&connect_timeout=5&synchronous_commit=off&application_name=mqttstore-test",
		"&pool_max_conns=3&connect_timeout=2s&group_commit=false&target_session_attrs=any",
	} {
		p := openDSN(t, dsn+extra)
		ctx := testCtx(t, 20*time.Second)
		if err := p.Sessions().Create(ctx, "c"+extra, persistence.SessionBase{}); err != nil {
			t.Fatalf("%s: Create: %v", extra, err)
		}
		_ = p.Close()
	}
	p := openDSN(t, "postgresql"+strings.TrimPrefix(dsn, "postgres"))
	if n, err := p.Sessions().Count(testCtx(t, 10*time.Second)); err != nil || n != 2 {
		t.Fatalf("Count through postgresql:// = %d, %v; want 2", n, err)
	}
}

// Brokers opening the same new schema at once: the advisory lock serialises the
// migrations, every Open succeeds and each migration is recorded once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 8
	var wg sync.WaitGroup
	ps := make([]*persistence.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ps[i], errs[i] = persistence.Open(testCtx(t, 60*time.Second), dsn)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = ps[i].Close() })
	}
	ctx := testCtx(t, 30*time.Second)
	var versions, systems int
	pool := postgres.Pool(ps[0])
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM mqtt_schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM mqtt_system`).Scan(&systems); err != nil {
		t.Fatal(err)
	}
	if versions != postgres.LatestMigration() || systems != 1 {
		t.Fatalf("after %d concurrent opens: %d migration rows, %d system rows; want %d and 1", n, versions, systems, postgres.LatestMigration())
	}
	// Both "brokers" work on the same data.
	if err := ps[0].Sessions().Create(ctx, "shared", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
	seq, err := ps[1].Sessions().PacketAppend(ctx, "shared", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps[2].Sessions().PacketGet(ctx, "shared", persistence.ClassQoS12, seq); err != nil {
		t.Fatalf("packet appended by one provider, read by another: %v", err)
	}
}

// A schema migrated by a newer driver, or whose system row records a newer SDK
// schema, is refused with ErrSchemaVersion.
func TestNewerSchemaRefused(t *testing.T) {
	for _, tc := range []struct{ name, sql string }{
		{"migration", `INSERT INTO mqtt_schema_migrations (version, name) VALUES (9999, '9999_future.sql')`},
		{"system info", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			p := openDSN(t, dsn)
			ctx := testCtx(t, 30*time.Second)
			sql, args := tc.sql, []any{}
			if sql == "" {
				info := persistence.SystemInfo{SchemaVersion: persistence.SchemaVersion + 1, CreatedAt: time.Now(), SDKVersion: "9.9.9"}
				sql, args = `UPDATE mqtt_system SET info = $1`, []any{driver.EncodeSystemInfo(nil, info)}
			}
			if _, err := postgres.Pool(p).Exec(ctx, sql, args...); err != nil {
				t.Fatal(err)
			}
			_ = p.Close()
			p2, err := persistence.Open(ctx, dsn)
			if err == nil {
				_ = p2.Close()
				t.Fatal("Open of a newer schema succeeded")
			}
			if !errors.Is(err, persistence.ErrSchemaVersion) {
				t.Fatalf("Open = %v, want ErrSchemaVersion", err)
			}
		})
	}
}

// GetInfo reports what was recorded at creation, and creation is recorded once.
func TestSystemInfo(t *testing.T) {
	dsn := pgtest.DSN(t)
	created := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	p := openDSN(t, dsn, persistence.WithClock(conformance.NewClock(created)))
	_ = p.Close()
	p = openDSN(t, dsn, persistence.WithClock(conformance.NewClock(created.Add(time.Hour))))
	info, err := p.Info(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !info.CreatedAt.Equal(created) || info.SchemaVersion != persistence.SchemaVersion ||
		info.SDKVersion != persistence.SDKVersion || info.Driver != postgres.Name {
		t.Fatalf("GetInfo = %+v; want created %v, schema %d, SDK %s, driver %s",
			info, created, persistence.SchemaVersion, persistence.SDKVersion, postgres.Name)
	}
}

// Corrupted rows decode to ErrBrokenEntry, never a panic.
func TestCorruptRows(t *testing.T) {
	p := openDSN(t, pgtest.DSN(t))
	ctx := testCtx(t, 30*time.Second)
	ss := p.Sessions()
	if err := ss.Create(ctx, "c", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		t.Fatal(err)
	}
	seq, err := ss.PacketAppend(ctx, "c", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("data")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.SubscriptionsStore(ctx, "c", persistence.Subscription{Filter: "a/#"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Retained().Put(ctx, "t", &persistence.PersistedPacket{Data: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	pool := postgres.Pool(p)
	for _, sql := range []string{
		`UPDATE mqtt_packets SET blob = substring(blob, 1, length(blob) - 1)`,
		`UPDATE mqtt_subscriptions SET blob = '\x53'`,
		`UPDATE mqtt_retained SET blob = set_byte(blob, 3, get_byte(blob, 3) # 255)`,
		`UPDATE mqtt_sessions SET state = '\x00', expiry = '\x45ff'`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	checks := map[string]error{}
	_, checks["PacketGet"] = ss.PacketGet(ctx, "c", persistence.ClassQoS12, seq)
	checks["PacketsForEach"] = ss.PacketsForEach(ctx, "c", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) { return false, nil })
	_, checks["SubscriptionsLoad"] = ss.SubscriptionsLoad(ctx, "c")
	_, checks["StateGet"] = ss.StateGet(ctx, "c")
	_, checks["ExpiryGet"] = ss.ExpiryGet(ctx, "c")
	checks["LoadForEach"] = ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { return nil })
	_, checks["Retained.Get"] = p.Retained().Get(ctx, "t")
	checks["Retained.Load"] = p.Retained().Load(ctx, func(*persistence.RetainedMessage) error { return nil })
	for name, err := range checks {
		if !errors.Is(err, persistence.ErrBrokenEntry) {
			t.Errorf("%s on a corrupted row = %v, want ErrBrokenEntry", name, err)
		}
	}
}

// With a pool of one connection, callbacks that call back into the store do not
// deadlock: no iteration holds a connection while its callback runs.
func TestCallbacksReenterWithOneConnection(t *testing.T) {
	for _, gc := range []string{"true", "false"} {
		t.Run("group_commit="+gc, func(t *testing.T) {
			p := openDSN(t, pgtest.DSN(t)+"&max_conns=1&group_commit="+gc)
			ctx := testCtx(t, 60*time.Second)
			ss, rs := p.Sessions(), p.Retained()
			for i := range 3 {
				id := fmt.Sprintf("c%d", i)
				if err := ss.Create(ctx, id, persistence.SessionBase{}); err != nil {
					t.Fatal(err)
				}
				if err := ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: time.Unix(int64(100+i), 0)}); err != nil {
					t.Fatal(err)
				}
			}
			pp := &persistence.PersistedPackets{}
			for i := range 600 {
				pp.QoS12 = append(pp.QoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte{byte(i)}})
			}
			if err := ss.PacketsStore(ctx, "c0", pp); err != nil {
				t.Fatal(err)
			}
			visited := 0
			err := ss.PacketsForEach(ctx, "c0", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
				visited++
				if _, err := ss.PacketCount(ctx, "c0", persistence.ClassQoS12); err != nil {
					return false, err
				}
				_, err := ss.PacketAppend(ctx, "c1", persistence.ClassQoS0, pk)
				return true, err
			})
			if err != nil || visited != 600 {
				t.Fatalf("PacketsForEach: visited %d, %v", visited, err)
			}
			if n, err := ss.PacketCount(ctx, "c0", persistence.ClassQoS12); err != nil || n != 0 {
				t.Fatalf("after acknowledging all: PacketCount = %d, %v", n, err)
			}
			if err := rs.Put(ctx, "a/b", &persistence.PersistedPacket{}); err != nil {
				t.Fatal(err)
			}
			if err := rs.LoadMatching(ctx, []string{"a/+"}, func(m *persistence.RetainedMessage) error {
				return rs.Put(ctx, m.Topic+"/c", m.Packet)
			}); err != nil {
				t.Fatal(err)
			}
			if err := ss.ExpiredForEach(ctx, time.Unix(1000, 0), func(id string, _ persistence.SessionExpiry) error {
				return ss.Delete(ctx, id)
			}); err != nil {
				t.Fatal(err)
			}
			if n, err := ss.Count(ctx); err != nil || n != 0 {
				t.Fatalf("after deleting every expired session: Count = %d, %v", n, err)
			}
		})
	}
}
