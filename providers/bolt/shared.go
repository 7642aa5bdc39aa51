package bolt

import (
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// A bolt file serves one provider at a time: bbolt locks it (flock, per open file,
// so a second open in the same process is refused as one from another process
// is), and an open that waited Config.Timeout for the lock is refused with
// driver.ErrInUse. Several brokers on one store need a driver that can be shared
// (see driver.Sharer).

// inUse is the error of an open of path that waited wait for the lock another
// provider holds; cause is bbolt's timeout.
func inUse(path string, wait time.Duration, cause error) error {
	return fmt.Errorf("bolt: %s is locked by another provider, in this process or another (waited %s; see the timeout option); "+
		"a bolt file serves one broker at a time, so several brokers need a store that can be shared, such as postgres: %w: %w",
		path, wait, driver.ErrInUse, cause)
}
