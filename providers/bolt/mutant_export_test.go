package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// NoSyncMutant is a broken bolt driver for the power-loss test: it opens path as
// sync=always says and then never fsyncs a commit (bbolt's NoSync forced on), the
// bug of a driver that ignores sync=always. A SIGKILL cannot tell it from the real
// driver (the page cache survives); a power cut must.
func NoSyncMutant(path string) driver.Connector {
	return noSyncMutant{Config{Path: path, Sync: SyncAlways}}
}

type noSyncMutant struct{ c Config }

func (m noSyncMutant) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	e, err := openEngine(m.c)
	if err != nil {
		return nil, err
	}
	e.db.NoSync = true
	return kv.Open(ctx, e, env, kv.Config{Driver: Name, MaxKeySize: bbolt.MaxKeySize})
}
