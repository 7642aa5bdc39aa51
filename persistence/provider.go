package persistence

import (
	"context"
	"log/slog"
	"net/url"
	"time"
)

// Provider is an open store (VolantMQ's IFace). The values its accessors return stay
// valid until Close; after Close every call on them returns [ErrClosed].
type Provider interface {
	// Sessions returns the session store.
	Sessions() Sessions
	// Retained returns the retained-message store.
	Retained() Retained
	// System returns the store's metadata.
	System() System
	// Close releases the store. It is idempotent; it waits for writes in progress.
	Close() error
}

// Driver opens stores of one kind. Drivers register themselves with [Register].
type Driver interface {
	// Open opens (creating if needed) the store described by cfg.
	Open(ctx context.Context, cfg Config) (Provider, error)
}

// Config is what a driver is opened with.
type Config struct {
	// URL is the parsed store URL; its scheme selects the driver, the rest is the
	// driver's to interpret. Options are in URL.Query(): see [Options].
	URL *url.URL
	// Clock is where the driver reads the current time (creation timestamps). Never nil.
	Clock Clock
	// Logger receives the driver's diagnostics. Never nil.
	Logger *slog.Logger
}

// Clock tells the time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
