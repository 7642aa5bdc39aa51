package kv

import (
	"fmt"
	"net/url"

	"github.com/mqttstore/mqttstore/persistence"
)

// URLPath returns the file or directory a driver's store URL names, for the forms
// scheme:///abs/path, scheme://rel/path and scheme:path, and an error matching
// persistence.ErrInvalidConfig for a nil URL or one with user info or a fragment,
// which no kv-based driver takes. The path may be empty; the driver decides whether
// that is allowed.
func URLPath(driver string, u *url.URL) (string, error) {
	if u == nil {
		return "", fmt.Errorf("%w: %s: nil store URL", persistence.ErrInvalidConfig, driver)
	}
	if u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%w: %s: store URL %q may only have a path and options", persistence.ErrInvalidConfig, driver, u.Redacted())
	}
	if u.Opaque != "" {
		return u.Opaque, nil
	}
	return u.Host + u.Path, nil
}
