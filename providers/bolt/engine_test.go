package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/kv"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// TestEngineContract checks the bbolt adapter alone against kv.Engine's contract.
// bbolt has no transaction size limit.
func TestEngineContract(t *testing.T) {
	kvtest.EngineContract(t, func(t *testing.T) kv.Engine {
		e, err := bolt.OpenEngine(filepath.Join(t.TempDir(), "engine.db"))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}, kvtest.EngineOptions{})
}
