package driver

import (
	"fmt"
	"time"
)

// SchemaVersion is the version of the stored data layout this SDK writes. A driver
// records it on first open and refuses, with [ErrSchemaVersion], a store whose
// recorded version is greater.
const SchemaVersion = 1

// SDKVersion is the version of this SDK, recorded by drivers when they create a store.
const SDKVersion = "0.1.0"

// SystemInfo describes a store.
type SystemInfo struct {
	// SchemaVersion is the layout version the store was written with.
	SchemaVersion uint32
	// CreatedAt is when the store was first opened.
	CreatedAt time.Time
	// SDKVersion is the SDK version that created the store.
	SDKVersion string
	// Driver is the name of the driver that serves the store.
	Driver string
}

// CheckSchema returns an error matching [ErrSchemaVersion] when a store recorded as
// version stored cannot be served by this SDK.
func CheckSchema(stored uint32) error {
	if stored > SchemaVersion {
		return fmt.Errorf("%w: store has schema version %d, this SDK (v%s) supports up to %d; upgrade the SDK", ErrSchemaVersion, stored, SDKVersion, SchemaVersion)
	}
	if stored == 0 {
		return fmt.Errorf("%w: store records schema version 0", ErrSchemaVersion)
	}
	return nil
}
