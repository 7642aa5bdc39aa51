package bolt

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// BenchmarkRaw is the baseline for BenchmarkConformance: the same bytes written
// straight through bbolt, opened exactly as the driver opens it (same options, same
// sync mode): Update per append, Batch for 64 concurrent appenders.
func BenchmarkRaw(b *testing.B) {
	for _, sync := range []string{"always", "none"} {
		b.Run("sync="+sync, func(b *testing.B) {
			kvtest.RawBench(b, func(b *testing.B) kvtest.RawEngine {
				e, err := openEngine(Config{Path: filepath.Join(b.TempDir(), "raw.db"), Sync: Sync(sync), Timeout: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				return rawBolt{e}
			})
		})
	}
}

type rawBolt struct{ e *engine }

func (r rawBolt) Close() error { return r.e.Close() }

func (r rawBolt) Put(k, v []byte) error {
	return r.e.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(k, v) })
}

func (r rawBolt) PutConcurrent(k, v []byte) error {
	return r.e.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(k, v) })
}

func (r rawBolt) PutMany(keys, vals [][]byte) error {
	return r.e.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r rawBolt) Page(prefix, start []byte, n int, fn func(k, v []byte)) error {
	return r.e.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && n > 0; k, v = c.Next() {
			fn(k, v)
			n--
		}
		return nil
	})
}

func (r rawBolt) DeleteMany(keys [][]byte) error {
	return r.e.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
