package badger_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

func dirURL(query string) func(dir string) string {
	return func(dir string) string { return "badger://" + filepath.Join(dir, "db") + "?" + query }
}

// The harness crashes a store with badger.Crash: the database is closed under the
// store without its Close.
func TestConformance(t *testing.T) {
	h := kvtest.Harness(dirURL("sync=always"), badger.Crash)
	h.PlantSchema = plantSchema(dirURL("sync=always"))
	h.PageSize = 256 // persistence/kv's page
	conformance.Run(t, h)
}

// TestConformanceInMemory runs the suite on badger://?inmemory=true, which keeps
// nothing across Close (no Reopen or Crash).
func TestConformanceInMemory(t *testing.T) {
	h := kvtest.Harness(func(string) string { return "badger://?inmemory=true" }, badger.Crash)
	h.Reopen, h.Crash = nil, nil
	// In-memory Badger refuses values over 1 MiB (the encoded blob adds a header): a
	// physical limit, declared so that the suite's larger payloads are skipped.
	h.Caps.MaxPayload = 1<<20 - 4096
	conformance.Run(t, h)
}

// BenchmarkConformance runs the standard workloads at sync=always and sync=none.
// MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	for _, sync := range []string{"always", "none"} {
		b.Run("sync="+sync, func(b *testing.B) {
			conformance.RunBench(b, kvtest.Harness(dirURL("sync="+sync), badger.Crash))
		})
	}
}

// plantSchema is the harness's PlantSchema: it creates a store in a fresh directory,
// overwrites its SystemInfo record (key "mi", see persistence/kv/LAYOUT.md) with one
// of schema version, closes it and opens it again as a user would.
func plantSchema(newURL func(dir string) string) func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
	return func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
		ctx := context.Background()
		dsn := newURL(t.TempDir())
		p, err := persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		info := driver.SystemInfo{SchemaVersion: version, CreatedAt: time.Unix(1, 0), SDKVersion: "9.9.9", Driver: "badger"}
		err = kvtest.Engine(p).Update(func(tx kv.Tx) error { return tx.Put([]byte("mi"), driver.EncodeSystemInfo(nil, info)) })
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
