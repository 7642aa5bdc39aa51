package bolt_test

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
	"github.com/mqttstore/mqttstore/providers/bolt"
)

func fileURL(sync string) func(dir string) string {
	return func(dir string) string { return "bolt://" + filepath.Join(dir, "state.db") + "?sync=" + sync }
}

// The harness crashes a store with bolt.Crash: the file is closed under the store
// without its Close.
func TestConformance(t *testing.T) {
	h := kvtest.Harness(fileURL("always"), bolt.Crash)
	h.PlantSchema = plantSchema(fileURL("always"))
	h.PageSize = 256 // persistence/kv's page
	conformance.Run(t, h)
}

// BenchmarkConformance runs the standard workloads at sync=always and sync=none.
// MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	b.Run("sync=always", func(b *testing.B) { conformance.RunBench(b, kvtest.Harness(fileURL("always"), bolt.Crash)) })
	b.Run("sync=none", func(b *testing.B) { conformance.RunBench(b, kvtest.Harness(fileURL("none"), bolt.Crash)) })
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
		info := driver.SystemInfo{SchemaVersion: version, CreatedAt: time.Unix(1, 0), SDKVersion: "9.9.9", Driver: "bolt"}
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
