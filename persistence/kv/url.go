package kv

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ParseURL parses dsn, a store URL of driver name (its scheme), for a driver's
// ParseConfig. It returns an error matching driver.ErrInvalidConfig when dsn cannot
// be parsed, has options that cannot be, or has another scheme.
func ParseURL(name, dsn string) (*url.URL, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot parse store URL: %v", driver.ErrInvalidConfig, name, err)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("%w: %s: cannot parse the options of store URL %q: %v", driver.ErrInvalidConfig, name, u.Redacted(), err)
	}
	if !strings.EqualFold(u.Scheme, name) {
		return nil, fmt.Errorf("%w: %s: store URL %q does not start with %s://", driver.ErrInvalidConfig, name, u.Redacted(), name)
	}
	return u, nil
}

// URLPath returns the file or directory a driver's store URL names, for the forms
// scheme:///abs/path, scheme://rel/path and scheme:path, and an error matching
// driver.ErrInvalidConfig for a nil URL or one with user info or a fragment, which
// no kv-based driver takes. The path may be empty; the driver decides whether that
// is allowed.
func URLPath(name string, u *url.URL) (string, error) {
	if u == nil {
		return "", fmt.Errorf("%w: %s: nil store URL", driver.ErrInvalidConfig, name)
	}
	if u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%w: %s: store URL %q may only have a path and options", driver.ErrInvalidConfig, name, u.Redacted())
	}
	if u.Opaque != "" {
		return u.Opaque, nil
	}
	return u.Host + u.Path, nil
}
