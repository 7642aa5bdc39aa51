package badger

import (
	"log/slog"

	bdg "github.com/dgraph-io/badger/v4"

	"github.com/mqttstore/mqttstore/persistence/kv"
)

// OpenEngine opens the kv.Engine adapter alone on a Badger directory with the
// memory=low profile, for the engine contract test.
func OpenEngine(dir string) (kv.Engine, error) {
	cfg, err := Config{Dir: dir, Sync: SyncNone, Memory: MemoryLow}.resolved()
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	db, err := bdg.Open(options(cfg, logger))
	if err != nil {
		return nil, err
	}
	return &engine{db: db, logger: logger}, nil
}
