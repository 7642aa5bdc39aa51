package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// rewrite opens the closed store's file with bbolt itself and rewrites values.
func rewrite(t *testing.T, path string) kvtest.Rewrite {
	return func(fn func(v []byte) ([]byte, bool)) int {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatalf("open %s with bbolt: %v", path, err)
		}
		defer db.Close()
		n := 0
		err = db.Update(func(tx *bbolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
				type kv struct{ k, v []byte }
				var changes []kv
				err := b.ForEach(func(k, v []byte) error {
					if nv, ok := fn(v); ok {
						changes = append(changes, kv{append([]byte(nil), k...), nv})
					}
					return nil
				})
				for _, c := range changes {
					if err == nil {
						err = b.Put(c.k, c.v)
					}
				}
				n += len(changes)
				return err
			})
		})
		if err != nil {
			t.Fatalf("rewrite %s: %v", path, err)
		}
		return n
	}
}

func TestCorruptValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	kvtest.Corruption(t, "bolt://"+path, rewrite(t, path))
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	kvtest.Schema(t, "bolt://"+path, rewrite(t, path))
}

func TestBadOptions(t *testing.T) {
	file := "bolt://" + filepath.Join(t.TempDir(), "state.db") + "?"
	kvtest.BadURLs(t, map[string]string{
		file + "sync=sometimes":        "sync",
		file + "sync=always&sync=none": "sync",
		file + "timeout=soon":          "timeout",
		file + "timeout=-1s":           "timeout",
		file + "nosuch=1":              "nosuch",
		file + "memory=low":            "memory", // a Badger option
		"bolt://":                      "path",
		"bolt://user@host/x.db":        "only",
	})
}

func TestLockedFileTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := context.Background()
	p, err := persistence.Open(ctx, "bolt://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// bbolt's flock is per open file, so a second open in this process is refused
	// exactly as one from another process would be.
	start := time.Now()
	q, err := persistence.Open(ctx, "bolt://"+path+"?timeout=300ms")
	if err == nil {
		_ = q.Close()
		t.Fatal("a second open of a locked file succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second open failed after %v, want about the 300ms timeout", d)
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not say the file is locked", err)
	}
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "state")
	path := filepath.Join(dir, "state.db")
	p, err := persistence.Open(context.Background(), "bolt://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.mode {
			t.Errorf("%s has mode %v, want %v", c.path, st.Mode().Perm(), c.mode)
		}
	}
}

func TestSyncModesPersist(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"always", "batch", "none"} {
		dsn := fileURL(mode)(t.TempDir())
		p, err := persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Sessions().Create(ctx, "c", persistence.SessionBase{}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		p, err = persistence.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := p.Sessions().Exists(ctx, "c"); !ok || err != nil {
			t.Errorf("sync=%s: session lost across Close: %v, %v", mode, ok, err)
		}
		_ = p.Close()
	}
}

func TestGroupCommitKeepsOperationsAtomic(t *testing.T) {
	kvtest.GroupCommit(t, fileURL("always")(t.TempDir()))
}

// bbolt keys hold at most 32768 bytes; session ids of 32000 bytes fit, retained
// topics of any length.
func TestLongKeys(t *testing.T) { kvtest.LongKeys(t, fileURL("always")(t.TempDir()), 32000) }

// TestCloseAfterCrash closes, as test cleanups do, a store whose file a crash
// already closed, in every sync mode (sync=none and batch fsync on Close).
func TestCloseAfterCrash(t *testing.T) {
	for _, mode := range []string{"always", "batch", "none"} {
		p, err := persistence.Open(context.Background(), fileURL(mode)(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if err := bolt.Crash(p); err != nil {
			t.Fatalf("sync=%s: crash: %v", mode, err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("sync=%s: Close after crash: %v", mode, err)
		}
	}
}

// TestConfig checks the typed configuration: ParseConfig fills in every default,
// rejects what the URL path of persistence.Open rejects, and Connect refuses a
// Config no URL could produce.
func TestConfig(t *testing.T) {
	cfg, err := bolt.ParseConfig("bolt:///tmp/x/state.db")
	if err != nil {
		t.Fatal(err)
	}
	if want := (bolt.Config{Path: "/tmp/x/state.db", Sync: bolt.SyncAlways, Timeout: bolt.DefaultTimeout}); *cfg != want {
		t.Errorf("ParseConfig = %+v, want %+v", *cfg, want)
	}
	for dsn, mention := range map[string]string{
		"bolt:///x.db?sync=sometimes": "sync",
		"badger:///x.db":              "bolt://",
		"bolt:///x.db?a=%zz":          "options",
		"bolt://":                     "path",
	} {
		if _, err := bolt.ParseConfig(dsn); !errors.Is(err, persistence.ErrInvalidConfig) || !strings.Contains(err.Error(), mention) {
			t.Errorf("ParseConfig(%q) = %v; want ErrInvalidConfig naming %q", dsn, err, mention)
		}
	}
	dir := t.TempDir()
	for _, c := range []bolt.Config{
		{},
		{Path: filepath.Join(dir, "a.db"), Sync: "sometimes"},
		{Path: filepath.Join(dir, "b.db"), Timeout: -time.Second},
	} {
		if p, err := persistence.OpenConnector(context.Background(), &c); !errors.Is(err, persistence.ErrInvalidConfig) {
			if p != nil {
				_ = p.Close()
			}
			t.Errorf("OpenConnector(%+v) = %v; want ErrInvalidConfig", c, err)
		}
	}
	// The zero values of Sync and Timeout are the defaults.
	p, err := persistence.OpenConnector(context.Background(), &bolt.Config{Path: filepath.Join(dir, "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCommitsObserved(t *testing.T) { kvtest.Commits(t, fileURL("always")(t.TempDir())) }
