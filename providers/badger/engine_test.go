package badger_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/persistence/kv"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// TestEngineContract checks the Badger adapter alone against kv.Engine's contract,
// transaction size limit included.
func TestEngineContract(t *testing.T) {
	kvtest.EngineContract(t, func(t *testing.T) kv.Engine {
		e, err := badger.OpenEngine(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}, kvtest.EngineOptions{TxnLimit: true})
}
