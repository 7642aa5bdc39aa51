package persistence

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

var (
	driversMu sync.RWMutex
	drivers   = map[string]driver.Driver{}
)

// Register makes a driver available under name (the URL scheme that selects it). It
// panics if name is empty, d is nil or name is already registered: both are
// programming errors in a driver's init function.
func Register(name string, d driver.Driver) {
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

// NewConnector parses dsn, a URL whose scheme names the driver ("mem://",
// "bolt:///var/lib/mqtt/state.db?sync=always", "postgres://user@host/db?schema=mqtt"),
// and returns the driver's connector for it without opening anything: every option is
// validated, so a program can check its configuration before it touches a store. An
// unregistered scheme returns an error matching [ErrUnknownProvider] listing the
// registered ones; a malformed URL or an unknown or bad option returns one matching
// [ErrInvalidConfig]. Passwords in dsn never appear in the error.
func NewConnector(dsn string) (driver.Connector, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// A *url.Error's message quotes the whole URL, secret options included:
		// keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: cannot parse store URL %s: %v", ErrInvalidConfig, Redact(dsn), redactErr(err, dsn))
	}
	// URL.Query, which drivers read their options from, silently drops pairs it
	// cannot parse; reject them here so that no option is ignored.
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("%w: cannot parse the options of store URL %s: %v", ErrInvalidConfig, Redact(dsn), redactErr(err, dsn))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: store URL %s has no scheme; want one of %s (e.g. \"mem://\")", ErrInvalidConfig, Redact(dsn), strings.Join(Drivers(), ", "))
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
	c, err := d.OpenConnector(u)
	if err != nil {
		return nil, redactErr(err, dsn)
	}
	return c, nil
}
