package badger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	bdg "github.com/dgraph-io/badger/v4"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// maxKeySize is the largest key Badger accepts (its Txn.modify limit).
const maxKeySize = 65000

// Name is the driver name the package registers, and so the scheme of its URLs.
const Name = "badger"

func init() { persistence.Register(Name, Driver{}) }

// Driver opens Badger stores. Use it through persistence.Open with a "badger://" URL.
type Driver struct{}

// config is what a store URL says.
type config struct {
	dir      string
	inMemory bool
	sync     bool
	memory   string
	gc       time.Duration
}

func parseURL(u *url.URL) (config, error) {
	var c config
	var err error
	if c.dir, err = kv.URLPath(Name, u); err != nil {
		return c, err
	}
	o := persistence.NewOptions(u.Query())
	c.inMemory = o.Bool("inmemory", false)
	c.sync = o.Enum("sync", "always", "always", "none") == "always"
	c.memory = o.Enum("memory", "default", "default", "low")
	c.gc = o.Duration("gc", 5*time.Minute)
	if err := o.Err(); err != nil {
		return c, fmt.Errorf("badger: %w", err)
	}
	switch {
	case c.inMemory && c.dir != "":
		return c, fmt.Errorf("%w: badger: store URL %q has both a path and inmemory=true", persistence.ErrInvalidConfig, u.Redacted())
	case !c.inMemory && c.dir == "":
		return c, fmt.Errorf("%w: badger: store URL %q has no directory; use badger:///path/to/dir or badger://?inmemory=true", persistence.ErrInvalidConfig, u.Redacted())
	}
	return c, nil
}

// options returns Badger's options for c. Badger's defaults (64 MiB memtables, five
// of them, a 256 MiB block cache, four compactors) are sized for servers; these keep
// the footprint of a broker's state small on a 2-core machine.
func options(c config, logger *slog.Logger) bdg.Options {
	o := bdg.DefaultOptions(c.dir).
		WithInMemory(c.inMemory).
		WithSyncWrites(c.sync).
		WithLogger(slogLogger{logger}).
		// Writes are serialized by the group committer, so Badger's conflict
		// detection would only cost time.
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithNumVersionsToKeep(1)
	switch c.memory {
	case "low":
		o = o.WithMemTableSize(8 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(6).
			WithBaseTableSize(1 << 20).
			WithBlockCacheSize(8 << 20).
			WithIndexCacheSize(4 << 20).
			WithValueLogFileSize(32 << 20)
	default:
		o = o.WithMemTableSize(32 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(3).
			WithNumLevelZeroTablesStall(8).
			WithBlockCacheSize(32 << 20).
			WithIndexCacheSize(16 << 20).
			WithValueLogFileSize(128 << 20)
	}
	return o
}

// Open opens (creating if needed) the Badger directory the URL names.
func (Driver) Open(ctx context.Context, cfg persistence.Config) (persistence.Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !c.inMemory {
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, fmt.Errorf("badger: create directory %s: %w", c.dir, err)
		}
	}
	db, err := bdg.Open(options(c, logger))
	if err != nil {
		return nil, fmt.Errorf("badger: open %s: %w", c.dir, err)
	}
	e := &engine{db: db, logger: logger}
	if !c.inMemory {
		e.gc = kv.Every(c.gc, e.collectValueLog)
	}
	return kv.Open(ctx, e, kv.Config{Driver: Name, Clock: cfg.Clock, Logger: logger, MaxKeySize: maxKeySize})
}

// engine adapts a Badger database to kv.Engine.
type engine struct {
	db        *bdg.DB
	logger    *slog.Logger
	gc        *kv.Ticker // value-log GC; nil in memory
	closeOnce sync.Once
	closeErr  error
}

// collectValueLog rewrites value-log files until one is not worth rewriting (less
// than half of it is garbage) or the loop is stopped.
func (e *engine) collectValueLog(quit <-chan struct{}) {
	for {
		err := e.db.RunValueLogGC(0.5)
		if err != nil {
			if !errors.Is(err, bdg.ErrNoRewrite) && !errors.Is(err, bdg.ErrRejected) {
				e.logger.Warn("badger value-log GC failed", "err", err)
			}
			return
		}
		select {
		case <-quit:
			return
		default:
		}
	}
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bdg.ErrDBClosed), errors.Is(err, bdg.ErrBlockedWrites):
		return fmt.Errorf("badger: %w: %w", kv.ErrEngineClosed, err)
	case errors.Is(err, bdg.ErrTxnTooBig):
		return fmt.Errorf("badger: %w: %w", kv.ErrTxnTooBig, err)
	}
	return err
}

func (e *engine) View(fn func(kv.Tx) error) error {
	return mapErr(e.db.View(func(t *bdg.Txn) error { return fn(txn{t}) }))
}

func (e *engine) Update(fn func(kv.Tx) error) error {
	return mapErr(e.db.Update(func(t *bdg.Txn) error { return fn(txn{t}) }))
}

// Close stops garbage collection and closes Badger; it is idempotent.
func (e *engine) Close() error {
	e.gc.Stop()
	e.closeOnce.Do(func() { e.closeErr = e.db.Close() })
	return e.closeErr
}

// txn adapts a Badger transaction to kv.Tx.
type txn struct{ t *bdg.Txn }

func (t txn) Get(k []byte) ([]byte, error) {
	item, err := t.t.Get(k)
	if errors.Is(err, bdg.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	v, err := item.ValueCopy(nil)
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, mapErr(err)
}

func (t txn) Put(k, v []byte) error { return mapErr(t.t.Set(k, v)) }
func (t txn) Delete(k []byte) error { return mapErr(t.t.Delete(k)) }

func (t txn) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	it := t.t.NewIterator(bdg.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var more bool
		err := item.Value(func(v []byte) error {
			var err error
			more, err = fn(item.Key(), v)
			return err
		})
		if err != nil || !more {
			return mapErr(err)
		}
	}
	return nil
}

// slogLogger routes Badger's log to slog: errors and warnings only.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, a ...any)   { s.l.Error("badger: " + fmt.Sprintf(f, a...)) }
func (s slogLogger) Warningf(f string, a ...any) { s.l.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (slogLogger) Infof(string, ...any)          {}
func (slogLogger) Debugf(string, ...any)         {}
