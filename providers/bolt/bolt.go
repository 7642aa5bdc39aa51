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
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// Name is the driver name the package registers, and so the scheme of its URLs.
const Name = "bolt"

func init() { persistence.Register(Name, Driver{}) }

// Driver opens bbolt stores. Use it through persistence.Open with a "bolt://" URL.
type Driver struct{}

// bucket holds every key; the layout inside it is persistence/kv's.
var bucket = []byte("mqttstore")

// syncInterval is how often sync=batch fsyncs the file.
const syncInterval = time.Second

// config is what a store URL says.
type config struct {
	path    string
	sync    string
	timeout time.Duration
}

func parseURL(u *url.URL) (config, error) {
	var c config
	var err error
	if c.path, err = kv.URLPath(Name, u); err != nil {
		return c, err
	}
	if c.path == "" {
		return c, fmt.Errorf("%w: bolt: store URL %q has no file path; use bolt:///path/to/state.db", persistence.ErrInvalidConfig, u.Redacted())
	}
	o := persistence.NewOptions(u.Query())
	c.sync = o.Enum("sync", "always", "always", "batch", "none")
	c.timeout = o.Duration("timeout", 2*time.Second)
	if err := o.Err(); err != nil {
		return c, fmt.Errorf("bolt: %w", err)
	}
	return c, nil
}

// Open opens (creating if needed) the bbolt file the URL names.
func (Driver) Open(ctx context.Context, cfg persistence.Config) (persistence.Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	e, err := openEngine(c)
	if err != nil {
		return nil, err
	}
	return kv.Open(ctx, e, kv.Config{Driver: Name, Clock: cfg.Clock, Logger: cfg.Logger, MaxKeySize: bbolt.MaxKeySize})
}

func openEngine(c config) (*engine, error) {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create directory of %s: %w", c.path, err)
	}
	db, err := bbolt.Open(c.path, 0o600, &bbolt.Options{
		Timeout: c.timeout,
		// The freelist is rebuilt at open instead of being written by every commit,
		// which halves the pages a small commit writes.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: %s is locked by another process (waited %s; see the timeout option): %w", c.path, c.timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", c.path, err)
	}
	db.NoSync = c.sync != "always"
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", c.path, err)
	}
	e := &engine{db: db}
	if c.sync == "batch" {
		e.syncer = kv.Every(syncInterval, func(<-chan struct{}) { _ = db.Sync() })
	}
	return e, nil
}

// engine adapts a bbolt database to kv.Engine.
type engine struct {
	db     *bbolt.DB
	syncer *kv.Ticker // sync=batch: the periodic fsync
	closed sync.Once  // Close and crash close the file once
	err    error
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bberrors.ErrDatabaseNotOpen):
		return fmt.Errorf("bolt: %w: %w", kv.ErrEngineClosed, err)
	}
	return err
}

func (e *engine) View(fn func(kv.Tx) error) error {
	return mapErr(e.db.View(func(tx *bbolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) }))
}

func (e *engine) Update(fn func(kv.Tx) error) error {
	return mapErr(e.db.Update(func(tx *bbolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) }))
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
