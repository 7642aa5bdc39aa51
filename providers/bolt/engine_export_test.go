package bolt

import "github.com/mqttstore/mqttstore/persistence/kv"

// OpenEngine opens the kv.Engine adapter alone on a bbolt file, for the engine
// contract test.
func OpenEngine(path string) (kv.Engine, error) {
	e, err := openEngine(Config{Path: path, Sync: SyncNone})
	if err != nil {
		return nil, err
	}
	return e, nil
}
