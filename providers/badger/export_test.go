package badger

import (
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// Crash abandons p as a killed process would: it closes the Badger database under
// the store, without the store's orderly Close, so queued writes are not drained.
// Badger's own Close still writes its memtable out, which a kill would not; what
// that cannot hide is a commit acknowledged before it reached the write-ahead log,
// which TestCrash (a real SIGKILL, conformance.RunCrash) covers.
func Crash(p *persistence.Store) error {
	return kvtest.Engine(p).(*engine).Close()
}

// SpaceCheckOff turns off p's free-space check, so that a test can fill the
// disk to the last byte under writes that the check would have refused.
func SpaceCheckOff(p *persistence.Store) {
	kvtest.Engine(p).(*engine).checkOff = true
}
