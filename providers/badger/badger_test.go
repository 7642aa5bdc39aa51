package badger_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bdg "github.com/dgraph-io/badger/v4"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// rewrite opens the closed store's directory with Badger itself and overwrites
// values, as garbage written under their keys.
func rewrite(t *testing.T, dir string) kvtest.Rewrite {
	return func(fn func(v []byte) ([]byte, bool)) int {
		db, err := bdg.Open(bdg.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithBlockCacheSize(1 << 20))
		if err != nil {
			t.Fatalf("open %s with badger: %v", dir, err)
		}
		defer db.Close()
		type change struct{ k, v []byte }
		var changes []change
		err = db.View(func(tx *bdg.Txn) error {
			it := tx.NewIterator(bdg.DefaultIteratorOptions)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if nv, ok := fn(v); ok {
					changes = append(changes, change{it.Item().KeyCopy(nil), nv})
				}
			}
			return nil
		})
		if err == nil {
			err = db.Update(func(tx *bdg.Txn) error {
				for _, c := range changes {
					if err := tx.Set(c.k, c.v); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			t.Fatalf("rewrite %s: %v", dir, err)
		}
		return len(changes)
	}
}

func TestCorruptValue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	kvtest.Corruption(t, "badger://"+dir, rewrite(t, dir))
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	kvtest.Schema(t, "badger://"+dir, rewrite(t, dir))
}

func TestBadOptions(t *testing.T) {
	dir := "badger://" + filepath.Join(t.TempDir(), "db") + "?"
	kvtest.BadURLs(t, map[string]string{
		dir + "sync=batch":     "sync",
		dir + "memory=huge":    "memory",
		dir + "gc=often":       "gc",
		dir + "gc=0s":          "gc",
		dir + "inmemory=maybe": "inmemory",
		dir + "timeout=2s":     "timeout", // a bolt option
		dir + "inmemory=true":  "inmemory",
		"badger://":            "directory",
	})
}

func TestOptionsPersistAndPermissions(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new", "db")
	for _, q := range []string{"sync=always&memory=low&gc=1m", "sync=none&memory=default"} {
		dsn := "badger://" + dir + "?" + q
		p, err := persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Retained().Put(ctx, q, &persistence.PersistedPacket{Data: []byte(q)}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := persistence.Open(ctx, "badger://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n, err := p.Retained().Count(ctx); n != 2 || err != nil {
		t.Errorf("retained Count after reopening = %d, %v; want 2", n, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %v, want 0700", dir, st.Mode().Perm())
	}
}

func TestLockedDirectory(t *testing.T) {
	dsn := dirURL("sync=none")(t.TempDir())
	p, err := persistence.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q, err := persistence.Open(context.Background(), dsn)
	if err == nil {
		_ = q.Close()
		t.Fatal("a second open of a directory in use succeeded")
	}
}

// TestGCLoopStopsOnClose runs value-log GC at a short interval and closes: Close
// must stop the loop (the race detector and the test's end would catch a loop that
// outlives it).
func TestGCLoopStopsOnClose(t *testing.T) {
	ctx := context.Background()
	p, err := persistence.Open(ctx, dirURL("gc=1ms&memory=low")(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := p.Retained().Put(ctx, "t", &persistence.PersistedPacket{Data: make([]byte, 1024+i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Retained().Put(ctx, "t", &persistence.PersistedPacket{}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
}

func TestGroupCommitKeepsOperationsAtomic(t *testing.T) {
	kvtest.GroupCommit(t, dirURL("sync=always")(t.TempDir()))
}

// Badger keys hold at most 65000 bytes; session ids of 64000 bytes fit, retained
// topics of any length.
func TestLongKeys(t *testing.T) { kvtest.LongKeys(t, dirURL("sync=always")(t.TempDir()), 64000) }

// TestConfig checks the typed configuration: ParseConfig fills in every default,
// rejects what the URL path of persistence.Open rejects, and Connect refuses a
// Config no URL could produce.
func TestConfig(t *testing.T) {
	cfg, err := badger.ParseConfig("badger:///tmp/x/db")
	if err != nil {
		t.Fatal(err)
	}
	want := badger.Config{Dir: "/tmp/x/db", Sync: badger.SyncAlways, Memory: badger.MemoryDefault, GC: badger.DefaultGC}
	if *cfg != want {
		t.Errorf("ParseConfig = %+v, want %+v", *cfg, want)
	}
	for dsn, mention := range map[string]string{
		"badger:///x?sync=batch": "sync",
		"bolt:///x":              "badger://",
		"badger://":              "directory",
	} {
		if _, err := badger.ParseConfig(dsn); !errors.Is(err, persistence.ErrInvalidConfig) || !strings.Contains(err.Error(), mention) {
			t.Errorf("ParseConfig(%q) = %v; want ErrInvalidConfig naming %q", dsn, err, mention)
		}
	}
	dir := t.TempDir()
	for _, c := range []badger.Config{
		{},
		{Dir: dir, InMemory: true},
		{Dir: dir, Sync: "batch"},
		{Dir: dir, Memory: "huge"},
		{Dir: dir, GC: -time.Second},
	} {
		if p, err := persistence.OpenConnector(context.Background(), &c); !errors.Is(err, persistence.ErrInvalidConfig) {
			if p != nil {
				_ = p.Close()
			}
			t.Errorf("OpenConnector(%+v) = %v; want ErrInvalidConfig", c, err)
		}
	}
	// The zero values of Sync, Memory and GC are the defaults.
	p, err := persistence.OpenConnector(context.Background(), &badger.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCommitsObserved(t *testing.T) { kvtest.Commits(t, dirURL("sync=always")(t.TempDir())) }
