package badger

import (
	"log/slog"
	"path/filepath"
	"testing"

	bdg "github.com/dgraph-io/badger/v4"

	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// BenchmarkRaw is the baseline for BenchmarkConformance: the same bytes written
// straight through Badger, opened with the driver's options (same memory settings
// and SyncWrites): Update per append, concurrent Updates (Badger's write loop
// batches them) for 64 appenders, WriteBatch-free page deletes in one Update.
func BenchmarkRaw(b *testing.B) {
	for _, sync := range []string{"always", "none"} {
		b.Run("sync="+sync, func(b *testing.B) {
			kvtest.RawBench(b, func(b *testing.B) kvtest.RawEngine {
				c := Config{Dir: filepath.Join(b.TempDir(), "raw"), Sync: Sync(sync), Memory: MemoryDefault}
				db, err := bdg.Open(options(c, slog.New(slog.DiscardHandler)))
				if err != nil {
					b.Fatal(err)
				}
				return rawBadger{db}
			})
		})
	}
}

type rawBadger struct{ db *bdg.DB }

func (r rawBadger) Close() error { return r.db.Close() }

func (r rawBadger) Put(k, v []byte) error {
	return r.db.Update(func(tx *bdg.Txn) error { return tx.Set(k, v) })
}

func (r rawBadger) PutConcurrent(k, v []byte) error { return r.Put(k, v) }

func (r rawBadger) PutMany(keys, vals [][]byte) error {
	return r.db.Update(func(tx *bdg.Txn) error {
		for i := range keys {
			if err := tx.Set(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r rawBadger) Page(prefix, start []byte, n int, fn func(k, v []byte)) error {
	return r.db.View(func(tx *bdg.Txn) error {
		it := tx.NewIterator(bdg.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix(prefix) && n > 0; it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { fn(item.Key(), v); return nil }); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

func (r rawBadger) DeleteMany(keys [][]byte) error {
	return r.db.Update(func(tx *bdg.Txn) error {
		for _, k := range keys {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
