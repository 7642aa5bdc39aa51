package badger

import (
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// A Badger directory serves one provider at a time: Badger locks it, and a second
// open, in this process or another, is refused with driver.ErrInUse. Several
// brokers on one store need a driver that can be shared (see driver.Sharer).

// inUse is the error of an open of a directory another provider holds.
func inUse(dir string, cause error) error {
	return fmt.Errorf("badger: %s is in use by another provider (in this process or another); "+
		"a Badger directory serves one broker at a time, so several brokers need a store that can be shared, such as postgres: %w: %v",
		dir, driver.ErrInUse, cause)
}

// isLocked reports whether err is Badger's refusal of a directory another process
// has locked; Badger formats it without wrapping the cause.
func isLocked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock")
}
