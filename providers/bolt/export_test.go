package bolt

import (
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// Crash abandons p as a killed process would: it closes the bbolt file (releasing
// its lock) without the store's orderly Close, so queued writes are not drained and
// no final fsync is made. Committed transactions are already in the file; what a
// crash must not lose is exactly what this keeps.
func Crash(p *persistence.Store) error {
	return kvtest.Engine(p).(*engine).crash()
}
