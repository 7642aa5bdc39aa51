package persistence

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a driver available under name (the URL scheme that selects it). It
// panics if name is empty, d is nil or name is already registered: both are
// programming errors in a driver's init function.
func Register(name string, d Driver) {
	if name == "" || d == nil {
		panic("persistence: Register with empty name or nil driver")
	}
	name = strings.ToLower(name)
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("persistence: Register called twice for driver " + name)
	}
	drivers[name] = d
}

// Drivers returns the sorted names of the registered drivers.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// OpenOption adjusts how [Open] opens a store.
type OpenOption func(*Config)

// WithClock makes the driver read time from c.
func WithClock(c Clock) OpenOption { return func(cfg *Config) { cfg.Clock = c } }

// WithLogger gives the driver a logger for its diagnostics.
func WithLogger(l *slog.Logger) OpenOption { return func(cfg *Config) { cfg.Logger = l } }

// Open opens the store described by dsn, a URL whose scheme names the driver:
// "mem://", "bolt:///var/lib/mqtt/state.db?sync=always",
// "postgres://user@host/db?schema=mqtt". An unregistered scheme returns an error
// matching [ErrUnknownProvider] listing the registered ones; a malformed URL or an
// unknown or bad option returns one matching [ErrInvalidConfig].
func Open(ctx context.Context, dsn string, opts ...OpenOption) (Provider, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse store URL: %v", ErrInvalidConfig, err)
	}
	// URL.Query, which drivers read their options from, silently drops pairs it
	// cannot parse; reject them here so that no option is ignored.
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("%w: cannot parse the options of store URL %q: %v", ErrInvalidConfig, dsn, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: store URL %q has no scheme; want one of %s (e.g. \"mem://\")", ErrInvalidConfig, dsn, strings.Join(Drivers(), ", "))
	}
	name := strings.ToLower(u.Scheme)
	driversMu.RLock()
	d := drivers[name]
	driversMu.RUnlock()
	if d == nil {
		known := Drivers()
		hint := "none are registered: import a driver package, e.g. _ \"github.com/mqttstore/mqttstore/providers/mem\""
		if len(known) > 0 {
			hint = "registered: " + strings.Join(known, ", ") + " (is the driver package imported?)"
		}
		return nil, fmt.Errorf("%w %q: %s", ErrUnknownProvider, name, hint)
	}
	cfg := Config{URL: u, Clock: SystemClock{}, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.Open(ctx, cfg)
}
