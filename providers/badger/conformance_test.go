package badger_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// stores remembers the URL each provider was opened with, for Reopen and Crash.
var (
	storesMu sync.Mutex
	stores   = map[persistence.Provider]string{}
)

func dsnOf(p persistence.Provider) string {
	storesMu.Lock()
	defer storesMu.Unlock()
	dsn := stores[p]
	delete(stores, p)
	return dsn
}

func open(t testing.TB, dsn string, opts ...persistence.OpenOption) persistence.Provider {
	t.Helper()
	p, err := persistence.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	storesMu.Lock()
	stores[p] = dsn
	storesMu.Unlock()
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func harness(sync string) conformance.Harness {
	return conformance.Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) persistence.Provider {
			return open(t, "badger://"+filepath.Join(t.TempDir(), "db")+"?sync="+sync, opts...)
		},
		Reopen: func(t testing.TB, p persistence.Provider, opts ...persistence.OpenOption) persistence.Provider {
			dsn := dsnOf(p)
			if err := p.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			return open(t, dsn, opts...)
		},
		// Crash closes the Badger database under the store without the store's Close (see
		// badger.Crash), then opens the same file again.
		Crash: func(t testing.TB, p persistence.Provider, opts ...persistence.OpenOption) persistence.Provider {
			dsn := dsnOf(p)
			if err := badger.Crash(p); err != nil {
				t.Fatalf("crash: %v", err)
			}
			return open(t, dsn, opts...)
		},
	}
}

func TestConformance(t *testing.T) { conformance.Run(t, harness("always")) }

// BenchmarkConformance runs the standard workloads at sync=always and sync=none.
func BenchmarkConformance(b *testing.B) {
	b.Run("sync=always", func(b *testing.B) { conformance.RunBench(b, harness("always")) })
	b.Run("sync=none", func(b *testing.B) { conformance.RunBench(b, harness("none")) })
}
