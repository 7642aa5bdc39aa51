package persistence

// These tests live inside the package so that each one can remove the drivers it
// registered (the registry has no Unregister), which keeps them repeatable with
// -count=N and independent of each other.

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// optionsDriver is a test-only driver that reads two options the way real drivers do
// (through driver.NewOptions) and records what it was opened with. It exercises the
// registry and option plumbing; it stores nothing.
type optionsDriver struct {
	urls   []*url.URL
	opened []driver.Env
	err    error // returned by Connect when set
}

func (d *optionsDriver) OpenConnector(u *url.URL) (driver.Connector, error) {
	o := driver.NewOptions(u.Query())
	o.Enum("sync", "always", "always", "none")
	o.Duration("timeout", time.Second)
	if err := o.Err(); err != nil {
		return nil, err
	}
	d.urls = append(d.urls, u)
	return optionsConnector{d}, nil
}

type optionsConnector struct{ d *optionsDriver }

func (c optionsConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	if c.d.err != nil {
		return nil, c.d.err
	}
	c.d.opened = append(c.d.opened, env)
	return &recConn{}, nil
}

// registerForTest registers d under name for the duration of the test.
func registerForTest(t *testing.T, name string, d driver.Driver) {
	t.Helper()
	Register(name, d)
	t.Cleanup(func() {
		driversMu.Lock()
		delete(drivers, strings.ToLower(name))
		driversMu.Unlock()
	})
}

// withNoDrivers empties the registry for the duration of the test.
func withNoDrivers(t *testing.T) {
	t.Helper()
	driversMu.Lock()
	saved := drivers
	drivers = map[string]driver.Driver{}
	driversMu.Unlock()
	t.Cleanup(func() {
		driversMu.Lock()
		drivers = saved
		driversMu.Unlock()
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpenUnknownSchemeListsRegisteredDrivers(t *testing.T) {
	withNoDrivers(t)
	registerForTest(t, "regtest-b", &optionsDriver{})
	registerForTest(t, "regtest-a", &optionsDriver{})

	p, err := Open(testContext(t), "nosuch://")
	if !errors.Is(err, ErrUnknownProvider) || p != nil {
		t.Fatalf("Open(nosuch://) = %v, %v; want nil and ErrUnknownProvider", p, err)
	}
	msg := err.Error()
	for _, want := range []string{`"nosuch"`, "regtest-a, regtest-b", "imported"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

// With nothing registered, the user most likely forgot the blank import of a
// driver package; the message says so.
func TestOpenWithNoDriversRegisteredSuggestsImportingOne(t *testing.T) {
	withNoDrivers(t)
	_, err := Open(testContext(t), "mem://")
	if !errors.Is(err, ErrUnknownProvider) {
		t.Fatalf("Open = %v, want ErrUnknownProvider", err)
	}
	if !strings.Contains(err.Error(), "none are registered") || !strings.Contains(err.Error(), "providers/mem") {
		t.Errorf("error %q does not tell the user to import a driver", err)
	}
}

func TestOpenPassesURLAndDefaultsToDriver(t *testing.T) {
	d := &optionsDriver{}
	registerForTest(t, "regtest", d)

	p, err := Open(testContext(t), "regtest:///var/lib/x.db?sync=none&timeout=5s")
	if err != nil || p == nil {
		t.Fatalf("Open = %v, %v", p, err)
	}
	if len(d.opened) != 1 {
		t.Fatalf("driver opened %d times, want 1", len(d.opened))
	}
	cfg := d.opened[0]
	if u := d.urls[0]; u.Scheme != "regtest" || u.Path != "/var/lib/x.db" || u.Query().Get("sync") != "none" {
		t.Errorf("driver got URL %v", u)
	}
	if _, ok := cfg.Clock.(SystemClock); !ok {
		t.Errorf("default Clock is %T, want SystemClock", cfg.Clock)
	}
	if cfg.Logger == nil {
		t.Error("default Logger is nil; drivers are promised a non-nil one")
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func TestOpenOptionsReachDriver(t *testing.T) {
	d := &optionsDriver{}
	registerForTest(t, "regtest", d)
	clock := fixedClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	logger := slog.New(slog.DiscardHandler)

	if _, err := Open(testContext(t), "regtest://", WithClock(clock), WithLogger(logger)); err != nil {
		t.Fatal(err)
	}
	cfg := d.opened[0]
	if cfg.Clock != clock || cfg.Logger != logger {
		t.Errorf("driver got Clock %v and Logger %p, want %v and %p", cfg.Clock, cfg.Logger, clock, logger)
	}
}

// URL schemes are case-insensitive (RFC 3986 section 3.1), and so are driver names.
func TestOpenSchemeIsCaseInsensitive(t *testing.T) {
	d := &optionsDriver{}
	registerForTest(t, "RegTest", d)
	if !slices.Contains(Drivers(), "regtest") {
		t.Errorf("Drivers() = %v, want the lower-case name regtest", Drivers())
	}
	for _, dsn := range []string{"regtest://", "REGTEST://", "RegTest://"} {
		if _, err := Open(testContext(t), dsn); err != nil {
			t.Errorf("Open(%q) = %v", dsn, err)
		}
	}
}

// The "mem://?bogus=1" case of the issue, through a driver that reads its options
// with NewOptions as every real driver does.
func TestOpenUnknownOptionIsInvalidConfigNamingIt(t *testing.T) {
	d := &optionsDriver{}
	registerForTest(t, "regtest", d)

	_, err := Open(testContext(t), "regtest://?bogus=1")
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{`"bogus"`, "known options: sync, timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if len(d.opened) != 0 || len(d.urls) != 0 {
		t.Error("driver opened a store despite an unknown option")
	}
}

func TestOpenBadOptionValueIsInvalidConfigNamingIt(t *testing.T) {
	registerForTest(t, "regtest", &optionsDriver{})
	for _, dsn := range []string{"regtest://?sync=sometimes", "regtest://?timeout=soon", "regtest://?sync=none&sync=always"} {
		_, err := Open(testContext(t), dsn)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open(%q) = %v, want ErrInvalidConfig", dsn, err)
			continue
		}
		name := "sync"
		if strings.Contains(dsn, "timeout") {
			name = "timeout"
		}
		if !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("Open(%q): error %q does not name option %q", dsn, err, name)
		}
	}
}

func TestOpenMalformedURLIsInvalidConfig(t *testing.T) {
	registerForTest(t, "regtest", &optionsDriver{})
	for _, dsn := range []string{
		"regtest://%zz",         // bad escape in host
		"regtest://host:port/x", // non-numeric port
		"regtest://[::1/x",      // unclosed IPv6 literal
		"://nothing",            // empty scheme before "://"
		"regtest://a b/",        // space in host
		// URL.Query drops pairs it cannot parse, so these would lose options
		// silently if Open did not reject them.
		"regtest:///x?%zz",
		"regtest:///x?sync=%zz",
		"regtest:///x?sync=none;timeout=1s",
	} {
		p, err := Open(testContext(t), dsn)
		if !errors.Is(err, ErrInvalidConfig) || p != nil {
			t.Errorf("Open(%q) = %v, %v; want nil and ErrInvalidConfig", dsn, p, err)
		}
	}
}

func TestOpenWithoutSchemeIsInvalidConfigListingDrivers(t *testing.T) {
	registerForTest(t, "regtest", &optionsDriver{})
	for _, dsn := range []string{"", "/var/lib/mqtt/state.db", "state.db", "?sync=always"} {
		_, err := Open(testContext(t), dsn)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open(%q) = %v, want ErrInvalidConfig", dsn, err)
			continue
		}
		if !strings.Contains(err.Error(), "no scheme") || !strings.Contains(err.Error(), "regtest") {
			t.Errorf("Open(%q): error %q should say the scheme is missing and list the drivers", dsn, err)
		}
	}
}

// A driver's own error is returned as is, so errors.Is keeps working through Open.
func TestOpenReturnsDriverError(t *testing.T) {
	cause := errors.New("disk on fire")
	registerForTest(t, "regtest", &optionsDriver{err: cause})
	if _, err := Open(testContext(t), "regtest://"); !errors.Is(err, cause) {
		t.Fatalf("Open = %v, want the driver's error", err)
	}
}

func TestOpenWithDoneContextDoesNotCallDriver(t *testing.T) {
	d := &optionsDriver{}
	registerForTest(t, "regtest", d)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, "regtest://"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open = %v, want context.Canceled", err)
	}
	if len(d.opened) != 0 {
		t.Error("driver was called with a cancelled context")
	}
}

func TestDriversIsSorted(t *testing.T) {
	withNoDrivers(t)
	if got := Drivers(); len(got) != 0 {
		t.Fatalf("Drivers() with none registered = %v", got)
	}
	for _, name := range []string{"zeta", "alpha", "Mid", "beta"} {
		registerForTest(t, name, &optionsDriver{})
	}
	want := []string{"alpha", "beta", "mid", "zeta"}
	if got := Drivers(); !slices.Equal(got, want) {
		t.Fatalf("Drivers() = %v, want %v", got, want)
	}
	// The result is a copy: changing it does not change the registry.
	got := Drivers()
	got[0] = "changed"
	if Drivers()[0] != "alpha" {
		t.Error("Drivers() returned the registry's own slice")
	}
}

func TestRegisterPanicsOnProgrammingErrors(t *testing.T) {
	registerForTest(t, "regtest-dup", &optionsDriver{})
	tests := []struct {
		name   string
		driver driver.Driver
		why    string
	}{
		{"", &optionsDriver{}, "empty name"},
		{"regtest-nil", nil, "nil driver"},
		{"regtest-dup", &optionsDriver{}, "duplicate name"},
		{"REGTEST-DUP", &optionsDriver{}, "duplicate name differing only in case"},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, %v) did not panic", tt.name, tt.driver)
				}
			}()
			Register(tt.name, tt.driver)
		})
	}
	if slices.Contains(Drivers(), "regtest-nil") {
		t.Error("a nil driver was registered despite the panic")
	}
}
