package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// dsns remembers the schema each open provider lives in, so Reopen and Crash can
// open it again.
var dsns sync.Map // *persistence.Store → string

func openDSN(t testing.TB, dsn string, opts ...persistence.OpenOption) *persistence.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	dsns.Store(p, dsn)
	t.Cleanup(func() { _ = p.Close(); dsns.Delete(p) })
	return p
}

func dsnOf(t testing.TB, p *persistence.Store) string {
	t.Helper()
	v, ok := dsns.Load(p)
	if !ok {
		t.Fatalf("provider %p was not opened by this harness", p)
	}
	return v.(string)
}

// harness gives each store its own schema; options are appended to the DSN.
func harness(options string) conformance.Harness {
	return conformance.Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			return openDSN(t, pgtest.DSN(t)+options, opts...)
		},
		Reopen: func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			dsn := dsnOf(t, p)
			if err := p.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			return openDSN(t, dsn, opts...)
		},
		Crash: func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			dsn := dsnOf(t, p)
			postgres.Crash(p)
			return openDSN(t, dsn, opts...)
		},
		Shared: func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			return openDSN(t, dsnOf(t, p), opts...)
		},
		PlantSchema: plantSchema(options),
		Corrupt:     corrupt,
		PageSize:    256, // the driver's page (sessions.go)
		CaseTimeout: time.Minute,
	}
}

// plantSchema is the harness's PlantSchema: it creates a store in a fresh schema,
// overwrites its mqtt_system row with one of schema version, closes it and opens it
// again as a user would.
func plantSchema(options string) func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
	return func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dsn := pgtest.DSN(t) + options
		p, err := persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		info := driver.SystemInfo{SchemaVersion: version, CreatedAt: time.Unix(1, 0), SDKVersion: "9.9.9", Driver: "postgres"}
		_, err = postgres.Pool(p).Exec(ctx, `UPDATE mqtt_system SET info = $1 WHERE id = 1`, driver.EncodeSystemInfo(nil, info))
		if cerr := p.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("plant schema version %d: %v", version, err)
		}
		q, err := persistence.Open(ctx, dsn, opts...)
		if q != nil {
			t.Cleanup(func() { _ = q.Close() })
		}
		return q, err
	}
}

func TestConformance(t *testing.T) { conformance.Run(t, harness("")) }

// BenchmarkConformance runs the standard workloads with the server's
// synchronous_commit (on) and with synchronous_commit=off.
// MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	b.Run("sync=on", func(b *testing.B) { conformance.RunBench(b, harness("")) })
	b.Run("sync=off", func(b *testing.B) { conformance.RunBench(b, harness("&synchronous_commit=off")) })
}
