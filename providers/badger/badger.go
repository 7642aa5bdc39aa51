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
	bopts "github.com/dgraph-io/badger/v4/options"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// maxKeySize is the largest key Badger accepts (its Txn.modify limit).
const maxKeySize = 65000

// Name is the driver name the package registers, and so the scheme of its URLs.
const Name = "badger"

func init() { persistence.Register(Name, Driver{}) }

// Driver turns "badger://" URLs into a [Config]. persistence.Open uses it; a program
// can open a [Config] with persistence.OpenConnector instead.
type Driver struct{}

// OpenConnector parses u into a [Config].
func (Driver) OpenConnector(u *url.URL) (driver.Connector, error) { return parseURL(u) }

// Sync says when a commit reaches the disk.
type Sync string

// The sync modes.
const (
	// SyncAlways fsyncs every commit before the write returns (Badger SyncWrites);
	// concurrent writers share commits. The default.
	SyncAlways Sync = "always"
	// SyncNone leaves the syncing to the OS: a process crash loses nothing, a power
	// loss may.
	SyncNone Sync = "none"
)

// Memory sizes Badger's memtables, caches and value-log files.
type Memory string

// The memory profiles.
const (
	// MemoryDefault suits a 2-core machine with a few hundred MB to spare. The
	// default.
	MemoryDefault Memory = "default"
	// MemoryLow roughly quarters MemoryDefault.
	MemoryLow Memory = "low"
)

// DefaultGC is how often value-log garbage collection runs when Config.GC is 0.
const DefaultGC = 5 * time.Minute

// Config is a Badger store's configuration: what a "badger://" URL says, as a value
// a program can build itself and open with persistence.OpenConnector.
type Config struct {
	// Dir is the Badger directory, created with mode 0700 when missing. Required
	// unless InMemory.
	Dir string
	// InMemory keeps everything in memory: nothing on disk, nothing kept across
	// Close. Dir must then be empty.
	InMemory bool
	// Sync is when commits are fsynced; "" means SyncAlways.
	Sync Sync
	// Memory is the memory profile; "" means MemoryDefault.
	Memory Memory
	// GC is how often value-log garbage collection runs (not in memory); 0 means
	// DefaultGC.
	GC time.Duration
}

// ParseConfig parses a "badger://" store URL into a Config, with every option given
// or defaulted: badger:///var/lib/mqtt/state?sync=always&memory=default&gc=5m, or
// badger://?inmemory=true. Errors match persistence.ErrInvalidConfig.
func ParseConfig(dsn string) (*Config, error) {
	u, err := kv.ParseURL(Name, dsn)
	if err != nil {
		return nil, err
	}
	return parseURL(u)
}

func parseURL(u *url.URL) (*Config, error) {
	dir, err := kv.URLPath(Name, u)
	if err != nil {
		return nil, err
	}
	o := driver.NewOptions(u.Query())
	c := &Config{
		Dir:      dir,
		InMemory: o.Bool("inmemory", false),
		Sync:     Sync(o.Enum("sync", string(SyncAlways), string(SyncAlways), string(SyncNone))),
		Memory:   Memory(o.Enum("memory", string(MemoryDefault), string(MemoryDefault), string(MemoryLow))),
		GC:       o.Duration("gc", DefaultGC),
	}
	if err := o.Err(); err != nil {
		return nil, fmt.Errorf("badger: %w", err)
	}
	switch {
	case c.InMemory && c.Dir != "":
		return nil, fmt.Errorf("%w: badger: store URL %q has both a path and inmemory=true", driver.ErrInvalidConfig, u.Redacted())
	case !c.InMemory && c.Dir == "":
		return nil, fmt.Errorf("%w: badger: store URL %q has no directory; use badger:///path/to/dir or badger://?inmemory=true", driver.ErrInvalidConfig, u.Redacted())
	}
	return c, nil
}

// resolved returns c with its defaults filled in, or an error matching
// persistence.ErrInvalidConfig.
func (c Config) resolved() (Config, error) {
	if c.Sync == "" {
		c.Sync = SyncAlways
	}
	if c.Memory == "" {
		c.Memory = MemoryDefault
	}
	if c.GC == 0 {
		c.GC = DefaultGC
	}
	switch {
	case c.InMemory && c.Dir != "":
		return c, fmt.Errorf("%w: badger: Config has both Dir %q and InMemory", driver.ErrInvalidConfig, c.Dir)
	case !c.InMemory && c.Dir == "":
		return c, fmt.Errorf("%w: badger: Config has neither Dir nor InMemory", driver.ErrInvalidConfig)
	case c.Sync != SyncAlways && c.Sync != SyncNone:
		return c, fmt.Errorf("%w: badger: Config.Sync %q is not one of always, none", driver.ErrInvalidConfig, c.Sync)
	case c.Memory != MemoryDefault && c.Memory != MemoryLow:
		return c, fmt.Errorf("%w: badger: Config.Memory %q is not one of default, low", driver.ErrInvalidConfig, c.Memory)
	case c.GC < 0:
		return c, fmt.Errorf("%w: badger: Config.GC %s is negative", driver.ErrInvalidConfig, c.GC)
	}
	return c, nil
}

// options returns Badger's options for c. Badger's defaults (64 MiB memtables, five
// of them, a 256 MiB block cache, four compactors) are sized for servers; these keep
// the footprint of a broker's state small on a 2-core machine.
func options(c Config, logger *slog.Logger) bdg.Options {
	o := bdg.DefaultOptions(c.Dir).
		WithInMemory(c.InMemory).
		WithSyncWrites(c.Sync == SyncAlways).
		WithLogger(slogLogger{logger}).
		// Writes are serialized by the group committer, so Badger's conflict
		// detection would only cost time.
		WithDetectConflicts(false).
		// Every table is verified in full when the store opens (checkDir); blocks
		// are verified again when read, and values in the value log too.
		WithChecksumVerificationMode(bopts.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithNumCompactors(2).
		WithNumVersionsToKeep(1)
	switch c.Memory {
	case MemoryLow:
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

// Connect opens (creating if needed) the Badger directory, or an empty in-memory
// store.
func (c *Config) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	cfg, err := c.resolved()
	if err != nil {
		return nil, err
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := options(cfg, logger)
	if !cfg.InMemory {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("badger: create directory %s: %w", cfg.Dir, err)
		}
		release, err := lockDir(cfg.Dir) // shared.go: a directory in use is refused before checkDir reads it
		if err != nil {
			return nil, err
		}
		err = removeSpareLogs(cfg.Dir) // prealloc.go
		if err == nil {
			err = checkDir(opts)
		}
		release() // Badger takes the lock itself
		if err != nil {
			return nil, err
		}
		// Opening writes too (a new log file, the flush of logs a crash left): on a
		// full file system that would be a SIGBUS.
		if err := (&engine{dir: cfg.Dir, reserve: reserve(opts)}).checkSpace(0); err != nil {
			return nil, fmt.Errorf("badger: open: %w", err)
		}
	}
	var db *bdg.DB
	err = guard(cfg.Dir, func() (err error) {
		db, err = bdg.Open(opts)
		return err
	})
	switch {
	case errors.Is(err, driver.ErrBrokenEntry):
		return nil, err
	case isLocked(err): // shared.go
		return nil, inUse(cfg.Dir, err)
	case isFull(err):
		return nil, fmt.Errorf("badger: open %s: %w: %w", cfg.Dir, driver.ErrStorageFull, err)
	case err != nil:
		return nil, fmt.Errorf("badger: open %s: %w", cfg.Dir, err)
	}
	e := &engine{db: db, logger: logger, dir: cfg.Dir}
	if !cfg.InMemory {
		e.logs = &logSpace{dir: cfg.Dir, size: 2 * opts.MemTableSize}
		if err := e.logs.start(); err != nil {
			e.Close()
			return nil, err
		}
		e.reserve = reserve(opts)
		e.fixModes()
		e.gc = kv.Every(cfg.GC, e.collectValueLog)
		e.modes = kv.Every(modeInterval, func(<-chan struct{}) { e.fixModes() })
	}
	return kv.Open(ctx, e, env, kv.Config{Driver: Name, MaxKeySize: maxKeySize})
}

// engine adapts a Badger database to kv.Engine.
type engine struct {
	db        *bdg.DB
	logger    *slog.Logger
	dir       string     // "" in memory
	reserve   uint64     // free bytes a write leaves on the file system; 0 in memory
	logs      *logSpace  // keeps the write-ahead logs allocated; nil in memory
	checkOff  bool       // tests only: no space check (see export_test.go)
	gc        *kv.Ticker // value-log GC; nil in memory
	modes     *kv.Ticker // fixModes; nil in memory
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
	case isFull(err) && !errors.Is(err, driver.ErrStorageFull):
		return fmt.Errorf("badger: %w: %w", driver.ErrStorageFull, err)
	case errors.Is(err, bdg.ErrDBClosed), errors.Is(err, bdg.ErrBlockedWrites):
		return fmt.Errorf("badger: %w: %w", kv.ErrEngineClosed, err)
	case errors.Is(err, bdg.ErrTxnTooBig):
		return fmt.Errorf("badger: %w: %w", kv.ErrTxnTooBig, err)
	}
	return err
}

// View and Update run under guard, so that a damaged block met while the store
// runs fails the call instead of the process.
func (e *engine) View(fn func(kv.Tx) error) error {
	return mapErr(guard(e.dir, func() error {
		return e.db.View(func(t *bdg.Txn) error { return fn(&txn{t: t}) })
	}))
}

// Update refuses, before Badger writes anything, a transaction that would leave
// less than e.reserve bytes free (see reserve).
func (e *engine) Update(fn func(kv.Tx) error) error {
	return mapErr(guard(e.dir, func() error {
		return e.db.Update(func(t *bdg.Txn) error {
			tx := &txn{t: t}
			if err := fn(tx); err != nil {
				return err
			}
			if err := e.checkSpace(tx.bytes); err != nil {
				return err
			}
			if e.logs != nil {
				return e.logs.ensure()
			}
			return nil
		})
	}))
}

// Close stops garbage collection and closes Badger; it is idempotent.
func (e *engine) Close() error {
	e.gc.Stop()
	e.modes.Stop()
	e.closeOnce.Do(func() {
		if e.logs != nil {
			// Badger writes its memtable to a table as it closes: the spare
			// log's space is what that needs on a full disk (see logSpace).
			e.logs.close()
		}
		e.closeErr = e.db.Close()
		if e.dir != "" {
			e.fixModes()
		}
	})
	return e.closeErr
}

// txn adapts a Badger transaction to kv.Tx and counts the bytes it writes.
type txn struct {
	t     *bdg.Txn
	bytes uint64
}

func (t *txn) Get(k []byte) ([]byte, error) {
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

func (t *txn) Put(k, v []byte) error {
	t.bytes += uint64(len(k) + len(v))
	return mapErr(t.t.Set(k, v))
}

func (t *txn) Delete(k []byte) error {
	t.bytes += uint64(len(k))
	return mapErr(t.t.Delete(k))
}

func (t *txn) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
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
