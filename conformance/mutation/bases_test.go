package mutation

// The two drivers the mutants are made of: the in-memory driver (providers/mem)
// and persistence/kv on a bbolt file (an adapter written here, as a third-party
// author would write one). A mutant wraps the driver.Conn of either, or the
// kv.Engine under the second.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// base names the driver a mutant is made of.
type base uint8

const (
	baseMem base = iota + 1 // providers/mem
	baseKV                  // persistence/kv on bbolt
)

func (b base) String() string {
	if b == baseKV {
		return "kv+bbolt"
	}
	return "mem"
}

// ---- mem ----

// memConnector connects mem and hands the Store the Conn wrap makes of it.
type memConnector struct{ wrap func(driver.Conn) driver.Conn }

func (c memConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	conn, err := mem.Config{}.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return c.wrap(conn), nil
}

// ---- persistence/kv on bbolt ----

var bucket = []byte("mqtt")

// boltEngine adapts a bbolt database to kv.Engine. It does not fsync (NoSync): the
// mutants are about meaning, not durability across power loss.
type boltEngine struct {
	db   *bbolt.DB
	once sync.Once
	err  error
}

func openBolt(path string) (*boltEngine, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	db.NoSync = true
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &boltEngine{db: db}, nil
}

func mapErr(err error) error {
	if errors.Is(err, bberrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", kv.ErrEngineClosed, err)
	}
	return err
}

func (e *boltEngine) View(fn func(kv.Tx) error) error {
	return mapErr(e.db.View(func(tx *bbolt.Tx) error { return fn(boltTx{tx.Bucket(bucket)}) }))
}

func (e *boltEngine) Update(fn func(kv.Tx) error) error {
	return mapErr(e.db.Update(func(tx *bbolt.Tx) error { return fn(boltTx{tx.Bucket(bucket)}) }))
}

func (e *boltEngine) Close() error {
	e.once.Do(func() { e.err = e.db.Close() })
	return e.err
}

type boltTx struct{ b *bbolt.Bucket }

func (t boltTx) Get(k []byte) ([]byte, error) { return t.b.Get(k), nil }
func (t boltTx) Put(k, v []byte) error        { return t.b.Put(k, v) }
func (t boltTx) Delete(k []byte) error        { return t.b.Delete(k) }

func (t boltTx) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	c := t.b.Cursor()
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// kvConnector opens persistence/kv on the bbolt file at path, the engine wrapped
// by engine and the Conn by conn (either may be nil). It records the engine it
// opened, so that a crash can close it under the store.
type kvConnector struct {
	path   string
	engine func(kv.Engine) kv.Engine
	conn   func(driver.Conn) driver.Conn
	opened **boltEngine
}

func (c kvConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	be, err := openBolt(c.path)
	if err != nil {
		return nil, err
	}
	if c.opened != nil {
		*c.opened = be
	}
	var eng kv.Engine = be
	if c.engine != nil {
		eng = c.engine(be)
	}
	s, err := kv.Open(ctx, eng, env, kv.Config{Driver: "kvbolt"})
	if err != nil {
		return nil, err
	}
	if c.conn != nil {
		return c.conn(s), nil
	}
	return s, nil
}

// ---- the harness of a mutant ----

// harness returns the conformance harness of m: stores of m's base with m's bug.
func (m mutant) harness() conformance.Harness {
	wrap := m.conn
	if wrap == nil {
		wrap = func(c driver.Conn) driver.Conn { return c }
	}
	if m.base == baseMem {
		return conformance.Harness{New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			s, err := persistence.OpenConnector(context.Background(), memConnector{wrap: wrap}, opts...)
			if err != nil {
				t.Fatalf("open mem with mutant %s: %v", m.name, err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}}
	}
	var (
		mu      sync.Mutex
		paths   = map[*persistence.Store]string{}
		engines = map[*persistence.Store]*boltEngine{}
	)
	open := func(t testing.TB, path string, engine func(kv.Engine) kv.Engine, opts ...persistence.OpenOption) (*persistence.Store, error) {
		var be *boltEngine
		s, err := persistence.OpenConnector(context.Background(), kvConnector{path: path, engine: engine, conn: wrap, opened: &be}, opts...)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		paths[s], engines[s] = path, be
		mu.Unlock()
		t.Cleanup(func() { _ = s.Close() })
		return s, nil
	}
	mustOpen := func(t testing.TB, path string, opts ...persistence.OpenOption) *persistence.Store {
		s, err := open(t, path, m.engine, opts...)
		if err != nil {
			t.Fatalf("open kv+bbolt with mutant %s: %v", m.name, err)
		}
		return s
	}
	take := func(s *persistence.Store) (string, *boltEngine) {
		mu.Lock()
		defer mu.Unlock()
		return paths[s], engines[s]
	}
	return conformance.Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			return mustOpen(t, filepath.Join(t.TempDir(), "state.db"), opts...)
		},
		Reopen: func(t testing.TB, s *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			path, _ := take(s)
			if err := s.Close(); err != nil {
				t.Fatalf("close before reopen: %v", err)
			}
			return mustOpen(t, path, opts...)
		},
		Crash: func(t testing.TB, s *persistence.Store, opts ...persistence.OpenOption) *persistence.Store {
			path, be := take(s)
			if err := be.Close(); err != nil {
				t.Fatalf("crash: %v", err)
			}
			return mustOpen(t, path, opts...)
		},
		PlantSchema: func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := open(t, path, nil)
			if err != nil {
				t.Fatalf("open kv+bbolt: %v", err)
			}
			_, be := take(s)
			info := driver.SystemInfo{SchemaVersion: version, CreatedAt: time.Unix(1, 0), SDKVersion: "9.9.9", Driver: "kvbolt"}
			err = be.Update(func(tx kv.Tx) error { return tx.Put([]byte("mi"), driver.EncodeSystemInfo(nil, info)) })
			if err == nil {
				err = s.Close()
			}
			if err != nil {
				t.Fatalf("plant schema version %d: %v", version, err)
			}
			return open(t, path, m.engine, opts...)
		},
		PageSize: 256,
	}
}
