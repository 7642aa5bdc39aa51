package kvtest

import (
	"context"
	"sync"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// Harness returns a conformance harness whose stores are opened from the URL
// newURL(dir) makes for a fresh t.TempDir(). Reopen closes the store and opens the
// same URL; Crash calls crash (which must release the engine without the store's
// Close) and opens the same URL again.
func Harness(newURL func(dir string) string, crash func(*persistence.Store) error) conformance.Harness {
	var (
		mu   sync.Mutex
		urls = map[*persistence.Store]string{}
	)
	open := func(t testing.TB, dsn string, opts ...persistence.OpenOption) *persistence.Store {
		t.Helper()
		p, err := persistence.Open(context.Background(), dsn, opts...)
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		mu.Lock()
		urls[p] = dsn
		mu.Unlock()
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	take := func(p *persistence.Store) string {
		mu.Lock()
		defer mu.Unlock()
		dsn := urls[p]
		delete(urls, p)
		return dsn
	}
	return conformance.Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			return open(t, newURL(t.TempDir()), opts...)
		},
		Reopen: func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			dsn := take(p)
			if err := p.Close(); err != nil {
				t.Fatalf("close before reopen: %v", err)
			}
			return open(t, dsn, opts...)
		},
		Crash: func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			dsn := take(p)
			if err := crash(p); err != nil {
				t.Fatalf("crash: %v", err)
			}
			return open(t, dsn, opts...)
		},
		Corrupt: Corrupt,
	}
}

// Engine returns the engine under p, a store of a driver built on persistence/kv, so
// that a driver's crash function can abandon it without the store's Close.
func Engine(p *persistence.Store) kv.Engine { return p.Driver().(*kv.Store).Engine() }
