package driver_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

func query(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", raw, err)
	}
	return v
}

// wantInvalidConfig checks that err matches ErrInvalidConfig and names every one of
// mentions, so that the user can find the option to fix.
func wantInvalidConfig(t *testing.T, err error, mentions ...string) {
	t.Helper()
	if !errors.Is(err, driver.ErrInvalidConfig) {
		t.Fatalf("Err() = %v, want an error matching ErrInvalidConfig", err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

func TestOptionsGettersReadGivenValues(t *testing.T) {
	o := driver.NewOptions(query(t, "path=/tmp/x&sync=batch&fsync=false&size=42&timeout=1m30s&flag"))
	if got := o.String("path", "def"); got != "/tmp/x" {
		t.Errorf("String = %q", got)
	}
	if got := o.Enum("sync", "always", "always", "batch", "none"); got != "batch" {
		t.Errorf("Enum = %q", got)
	}
	if got := o.Bool("fsync", true); got != false {
		t.Errorf("Bool = %v", got)
	}
	if got := o.Int("size", 1, 0, 100); got != 42 {
		t.Errorf("Int = %d", got)
	}
	if got := o.Duration("timeout", time.Second); got != 90*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if !o.Has("flag") {
		t.Error("Has(flag) = false for a value-less option")
	}
	if err := o.Err(); err != nil {
		t.Errorf("Err() = %v after reading every option", err)
	}
}

func TestOptionsGettersReturnDefaultsWhenAbsent(t *testing.T) {
	o := driver.NewOptions(url.Values{})
	if got := o.String("path", "def"); got != "def" {
		t.Errorf("String = %q", got)
	}
	if got := o.Enum("sync", "always", "always", "none"); got != "always" {
		t.Errorf("Enum = %q", got)
	}
	if got := o.Bool("fsync", true); got != true {
		t.Errorf("Bool = %v", got)
	}
	if got := o.Int("size", 7, 0, 100); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := o.Duration("timeout", 3*time.Second); got != 3*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if o.Has("flag") {
		t.Error("Has(flag) = true for an absent option")
	}
	if err := o.Err(); err != nil {
		t.Errorf("Err() = %v with no options given", err)
	}
	// A nil url.Values (a URL without query) behaves the same.
	if err := driver.NewOptions(nil).Err(); err != nil {
		t.Errorf("Err() on nil values = %v", err)
	}
}

func TestOptionsAcceptedSpellings(t *testing.T) {
	for raw, want := range map[string]bool{"1": true, "0": false, "true": true, "false": false, "TRUE": true, "f": false} {
		o := driver.NewOptions(url.Values{"b": {raw}})
		if got := o.Bool("b", !want); got != want || o.Err() != nil {
			t.Errorf("Bool(%q) = %v, %v; want %v", raw, got, o.Err(), want)
		}
	}
	for raw, want := range map[string]int{"0": 0, "-5": -5, "10": 10} {
		o := driver.NewOptions(url.Values{"n": {raw}})
		if got := o.Int("n", 99, -5, 10); got != want || o.Err() != nil {
			t.Errorf("Int(%q) in [-5, 10] = %d, %v; want %d", raw, got, o.Err(), want)
		}
	}
	// An empty string is a value for String: the user asked for it explicitly.
	o := driver.NewOptions(url.Values{"s": {""}})
	if got := o.String("s", "def"); got != "" || o.Err() != nil {
		t.Errorf("String of an empty value = %q, %v; want \"\"", got, o.Err())
	}
}

func TestOptionsBadValuesAreNamed(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		read  func(o *driver.Options) any
		def   any
		wants []string
	}{
		{"EnumNotAllowed", "sync=sometimes", func(o *driver.Options) any { return o.Enum("sync", "always", "always", "none") }, "always", []string{`"sync"`, `"sometimes"`, "always, none"}},
		{"EnumEmpty", "sync=", func(o *driver.Options) any { return o.Enum("sync", "always", "always", "none") }, "always", []string{`"sync"`}},
		{"EnumIsCaseSensitive", "sync=ALWAYS", func(o *driver.Options) any { return o.Enum("sync", "none", "always", "none") }, "none", []string{`"sync"`, `"ALWAYS"`}},
		{"BoolGarbage", "fsync=yes", func(o *driver.Options) any { return o.Bool("fsync", true) }, true, []string{`"fsync"`, `"yes"`, "boolean"}},
		{"BoolEmpty", "fsync=", func(o *driver.Options) any { return o.Bool("fsync", true) }, true, []string{`"fsync"`}},
		{"IntNotANumber", "size=ten", func(o *driver.Options) any { return o.Int("size", 5, 1, 100) }, 5, []string{`"size"`, `"ten"`, "[1, 100]"}},
		{"IntBelowMin", "size=0", func(o *driver.Options) any { return o.Int("size", 5, 1, 100) }, 5, []string{`"size"`, "[1, 100]"}},
		{"IntAboveMax", "size=101", func(o *driver.Options) any { return o.Int("size", 5, 1, 100) }, 5, []string{`"size"`, "[1, 100]"}},
		{"IntFloat", "size=1.5", func(o *driver.Options) any { return o.Int("size", 5, 1, 100) }, 5, []string{`"size"`}},
		{"IntOverflow", "size=99999999999999999999", func(o *driver.Options) any { return o.Int("size", 5, 1, 100) }, 5, []string{`"size"`}},
		{"DurationGarbage", "timeout=soon", func(o *driver.Options) any { return o.Duration("timeout", time.Second) }, time.Second, []string{`"timeout"`, `"soon"`, "2s"}},
		{"DurationWithoutUnit", "timeout=5", func(o *driver.Options) any { return o.Duration("timeout", time.Second) }, time.Second, []string{`"timeout"`}},
		{"DurationZero", "timeout=0s", func(o *driver.Options) any { return o.Duration("timeout", time.Second) }, time.Second, []string{`"timeout"`, "positive"}},
		{"DurationNegative", "timeout=-1s", func(o *driver.Options) any { return o.Duration("timeout", time.Second) }, time.Second, []string{`"timeout"`, "positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := driver.NewOptions(query(t, tt.raw))
			// A bad value falls back to the default, but Err reports it: the
			// driver must not open with a value the user did not ask for.
			if got := tt.read(o); got != tt.def {
				t.Errorf("getter returned %v, want the default %v", got, tt.def)
			}
			wantInvalidConfig(t, o.Err(), tt.wants...)
		})
	}
}

// An option given twice is ambiguous; it is an error for every getter, and Has.
func TestOptionsDuplicatedValuesAreRejected(t *testing.T) {
	getters := map[string]func(o *driver.Options){
		"String":   func(o *driver.Options) { o.String("x", "") },
		"Enum":     func(o *driver.Options) { o.Enum("x", "a", "a", "b") },
		"Bool":     func(o *driver.Options) { o.Bool("x", false) },
		"Int":      func(o *driver.Options) { o.Int("x", 0, 0, 10) },
		"Duration": func(o *driver.Options) { o.Duration("x", time.Second) },
	}
	for name, read := range getters {
		t.Run(name, func(t *testing.T) {
			o := driver.NewOptions(url.Values{"x": {"1", "1"}})
			read(o)
			wantInvalidConfig(t, o.Err(), `"x"`, "2 times")
		})
	}
}

func TestOptionsUnknownOptionsAreNamedWithKnownOnes(t *testing.T) {
	o := driver.NewOptions(query(t, "sync=always&bogus=1&zzz&timeout=1s"))
	o.Enum("sync", "always", "always", "none")
	o.Duration("timeout", time.Second)
	o.Has("readonly") // known even though absent
	err := o.Err()
	wantInvalidConfig(t, err, `unknown option "bogus"`, `unknown option "zzz"`, "known options: readonly, sync, timeout")
	// Unknown options are listed in a stable (sorted) order.
	if strings.Index(err.Error(), "bogus") > strings.Index(err.Error(), "zzz") {
		t.Errorf("unknown options not sorted in %q", err)
	}
	if strings.Contains(err.Error(), `unknown option "sync"`) {
		t.Errorf("a known option is reported unknown: %q", err)
	}
}

func TestOptionsUnknownOptionForDriverWithoutOptions(t *testing.T) {
	o := driver.NewOptions(query(t, "bogus=1"))
	wantInvalidConfig(t, o.Err(), `"bogus"`, "takes no options")
}

// Every problem is reported at once, so the user fixes the URL in one go.
func TestOptionsErrReportsEveryProblem(t *testing.T) {
	o := driver.NewOptions(query(t, "sync=bad&size=x&size=y&bogus=1"))
	o.Enum("sync", "always", "always")
	o.Int("size", 0, 0, 1)
	wantInvalidConfig(t, o.Err(), `"sync"`, `"size"`, `"bogus"`)
}

// Err can be called more than once and does not accumulate its own reports.
func TestOptionsErrIsRepeatable(t *testing.T) {
	o := driver.NewOptions(query(t, "bogus=1&sync=bad"))
	o.Enum("sync", "a", "a")
	first, second := o.Err(), o.Err()
	if first == nil || second == nil || first.Error() != second.Error() {
		t.Fatalf("Err() = %v, then %v; want the same error twice", first, second)
	}
}
