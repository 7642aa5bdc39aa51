package tool

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// CompactReport says what compact did.
type CompactReport struct {
	Driver      string `json:"driver"`
	BytesBefore int64  `json:"bytes_before"`
	BytesAfter  int64  `json:"bytes_after"`
	Note        string `json:"note,omitempty"`
}

// Compact reclaims free space of a store no process has open. The SDK has no
// compaction call, so this works on the engines directly: bolt stores are
// copy-compacted into a new file that replaces the old one (bbolt.Compact), Badger
// stores are flattened and their value log garbage-collected. Other drivers return
// ErrUnsupported (PostgreSQL: autovacuum, or VACUUM FULL by its administrator).
func Compact(ctx context.Context, storeURL string) (*CompactReport, error) {
	u, err := url.Parse(storeURL)
	if err != nil {
		// url.Parse's error holds the whole URL, password included.
		return nil, fmt.Errorf("%w: cannot parse store URL %s", persistence.ErrInvalidConfig, persistence.Redact(storeURL))
	}
	scheme := strings.ToLower(u.Scheme)
	// Opening through the SDK first checks the URL, the schema version and that no
	// other process holds the store.
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	switch scheme {
	case "bolt":
		path, err := kv.URLPath(scheme, u)
		if err != nil {
			return nil, err
		}
		return compactBolt(ctx, path)
	case "badger":
		dir, err := kv.URLPath(scheme, u)
		if err != nil {
			return nil, err
		}
		if dir == "" {
			return nil, fmt.Errorf("%w: an in-memory Badger store has nothing to compact", ErrUnsupported)
		}
		return compactBadger(dir)
	}
	return nil, fmt.Errorf("%w: driver %q has no compaction the tool can run (postgres: autovacuum reclaims space; VACUUM FULL is its administrator's call)", ErrUnsupported, scheme)
}

func compactBolt(ctx context.Context, path string) (*CompactReport, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	rep := &CompactReport{Driver: "bolt", BytesBefore: fi.Size()}
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("compact: open %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bbolt.Open(tmp, fi.Mode().Perm(), &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := bbolt.Compact(dst, src, 64<<20); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := errors.Join(dst.Sync(), dst.Close()); err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	// The source stays locked until the new file is in place.
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		rep.BytesAfter = fi.Size()
	}
	return rep, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func compactBadger(dir string) (*CompactReport, error) {
	rep := &CompactReport{Driver: "badger", BytesBefore: dirSize(dir)}
	opts := badgerdb.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true)
	db, err := badgerdb.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("compact: open %s: %w", dir, err)
	}
	if err := db.Flatten(2); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("compact: flatten: %w", err)
	}
	runs := 0
	for ; runs < 100; runs++ {
		if err := db.RunValueLogGC(0.5); err != nil {
			if errors.Is(err, badgerdb.ErrNoRewrite) {
				break
			}
			_ = db.Close()
			return nil, fmt.Errorf("compact: value log GC: %w", err)
		}
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	rep.BytesAfter = dirSize(dir)
	rep.Note = fmt.Sprintf("levels flattened, %d value log files rewritten", runs)
	return rep, nil
}
