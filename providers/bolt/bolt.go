package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// Name is the driver name the package registers, and so the scheme of its URLs.
const Name = "bolt"

func init() { persistence.Register(Name, Driver{}) }

// Driver turns "bolt://" URLs into a [Config]. persistence.Open uses it; a program
// with a path at hand can open a [Config] with persistence.OpenConnector instead.
type Driver struct{}

// OpenConnector parses u into a [Config].
func (Driver) OpenConnector(u *url.URL) (driver.Connector, error) { return parseURL(u) }

// Sync says when a commit reaches the disk.
type Sync string

// The sync modes (see the package documentation).
const (
	// SyncAlways fsyncs every commit before the write returns; concurrent writers
	// share commits. The default.
	SyncAlways Sync = "always"
	// SyncBatch fsyncs the file every second instead: a process crash loses
	// nothing, an OS crash or power loss may lose the last second of writes.
	SyncBatch Sync = "batch"
	// SyncNone never fsyncs. Only for tests and throwaway state.
	SyncNone Sync = "none"
)

// DefaultTimeout is how long Connect waits for a file locked by another process
// when Config.Timeout is 0.
const DefaultTimeout = 2 * time.Second

// Config is a bbolt store's configuration: what a "bolt://" URL says, as a value a
// program can build itself and open with persistence.OpenConnector.
type Config struct {
	// Path is the bbolt file, created with mode 0600 (its directory with 0700) when
	// missing. Required.
	Path string
	// Sync is when commits are fsynced; "" means SyncAlways.
	Sync Sync
	// Timeout is how long Connect waits for the file lock another process holds
	// before failing with an error that says the file is locked; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// ParseConfig parses a "bolt://" store URL into a Config, with every option given
// or defaulted: bolt:///var/lib/mqtt/state.db?sync=always&timeout=2s. Errors match
// persistence.ErrInvalidConfig.
func ParseConfig(dsn string) (*Config, error) {
	u, err := kv.ParseURL(Name, dsn)
	if err != nil {
		return nil, err
	}
	return parseURL(u)
}

func parseURL(u *url.URL) (*Config, error) {
	path, err := kv.URLPath(Name, u)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: bolt: store URL %q has no file path; use bolt:///path/to/state.db", driver.ErrInvalidConfig, u.Redacted())
	}
	o := driver.NewOptions(u.Query())
	c := &Config{
		Path:    path,
		Sync:    Sync(o.Enum("sync", string(SyncAlways), string(SyncAlways), string(SyncBatch), string(SyncNone))),
		Timeout: o.Duration("timeout", DefaultTimeout),
	}
	if err := o.Err(); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	return c, nil
}

// resolved returns c with its defaults filled in, or an error matching
// persistence.ErrInvalidConfig.
func (c Config) resolved() (Config, error) {
	if c.Sync == "" {
		c.Sync = SyncAlways
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.Path == "":
		return c, fmt.Errorf("%w: bolt: Config.Path is empty", driver.ErrInvalidConfig)
	case c.Sync != SyncAlways && c.Sync != SyncBatch && c.Sync != SyncNone:
		return c, fmt.Errorf("%w: bolt: Config.Sync %q is not one of always, batch, none", driver.ErrInvalidConfig, c.Sync)
	case c.Timeout < 0:
		return c, fmt.Errorf("%w: bolt: Config.Timeout %s is negative", driver.ErrInvalidConfig, c.Timeout)
	}
	return c, nil
}

// Connect opens (creating if needed) the bbolt file.
func (c *Config) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	e, err := openEngine(*c)
	if err != nil {
		return nil, err
	}
	return kv.Open(ctx, e, env, kv.Config{Driver: Name, MaxKeySize: bbolt.MaxKeySize})
}

// bucket holds every key; the layout inside it is persistence/kv's.
var bucket = []byte("mqttstore")

// syncInterval is how often SyncBatch fsyncs the file.
const syncInterval = time.Second

func openEngine(c Config) (*engine, error) {
	c, err := c.resolved()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create directory of %s: %w", c.Path, err)
	}
	if err := checkFile(c); err != nil {
		return nil, err
	}
	var db *bbolt.DB
	err = guard(c.Path, func() (err error) {
		db, err = bbolt.Open(c.Path, 0o600, &bbolt.Options{
			Timeout: c.Timeout,
			// The freelist is rebuilt at open instead of being written by every commit,
			// which halves the pages a small commit writes.
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		})
		return err
	})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, inUse(c.Path, c.Timeout, err) // shared.go
	}
	if err != nil {
		if errors.Is(err, driver.ErrBrokenEntry) {
			return nil, err
		}
		return nil, mapOpenErr(c.Path, err)
	}
	db.NoSync = c.Sync != SyncAlways
	e := &engine{db: db, path: c.Path}
	if err := e.mapErr(guard(c.Path, func() error {
		return db.Update(func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		})
	})); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", c.Path, err)
	}
	if c.Sync == SyncBatch {
		e.syncer = kv.Every(syncInterval, func(<-chan struct{}) { _ = db.Sync() })
	}
	return e, nil
}

// engine adapts a bbolt database to kv.Engine.
type engine struct {
	db     *bbolt.DB
	path   string
	syncer *kv.Ticker // sync=batch: the periodic fsync
	closed sync.Once  // Close and crash close the file once
	err    error
}

func (e *engine) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bberrors.ErrDatabaseNotOpen):
		return fmt.Errorf("bolt: %w: %w", kv.ErrEngineClosed, err)
	case isFull(err) && !errors.Is(err, driver.ErrStorageFull):
		return fmt.Errorf("bolt: %s: %w: %w", e.path, driver.ErrStorageFull, err)
	}
	return err
}

// View and Update run under guard: a page found damaged while the store runs fails
// the call with driver.ErrBrokenEntry instead of killing the process (bbolt rolls
// the transaction back and releases its locks as the panic unwinds).
func (e *engine) View(fn func(kv.Tx) error) error {
	return e.mapErr(guard(e.path, func() error {
		return e.db.View(func(tx *bbolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) })
	}))
}

func (e *engine) Update(fn func(kv.Tx) error) error {
	return e.mapErr(guard(e.path, func() error {
		return e.db.Update(func(tx *bbolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) })
	}))
}

// Close stops the periodic fsync, fsyncs (bbolt skips it under NoSync) and closes
// the file.
func (e *engine) Close() error {
	e.closed.Do(func() {
		e.syncer.Stop()
		var syncErr error
		if e.db.NoSync {
			syncErr = e.db.Sync()
		}
		e.err = errors.Join(syncErr, e.db.Close())
	})
	return e.err
}

// crash closes the file without the final fsync, as a killed process would leave it
// (the lock is released; nothing more is flushed).
func (e *engine) crash() error {
	e.closed.Do(func() {
		e.syncer.Stop()
		e.err = e.db.Close()
	})
	return e.err
}

// txn adapts a bbolt transaction (through its one bucket) to kv.Tx.
type txn struct{ b *bbolt.Bucket }

func (t txn) Get(k []byte) ([]byte, error) { return t.b.Get(k), nil }
func (t txn) Put(k, v []byte) error        { return t.b.Put(k, v) }
func (t txn) Delete(k []byte) error        { return t.b.Delete(k) }

func (t txn) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	c := t.b.Cursor()
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
