package kvtest

import (
	"context"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// PlantSchema makes a conformance harness's PlantSchema for a driver named
// driverName: it creates a store at newURL(t.TempDir()), overwrites its SystemInfo
// record (key "mi", see persistence/kv/LAYOUT.md) with one of schema version,
// closes it and opens it again as a user would.
func PlantSchema(newURL func(dir string) string, driverName string) func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
	return func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
		ctx := context.Background()
		dsn := newURL(t.TempDir())
		p, err := persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		info := driver.SystemInfo{SchemaVersion: version, CreatedAt: time.Unix(1, 0), SDKVersion: "9.9.9", Driver: driverName}
		err = Engine(p).Update(func(tx kv.Tx) error { return tx.Put([]byte("mi"), driver.EncodeSystemInfo(nil, info)) })
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
