package driver

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options reads a store URL's query options for a driver, validating each and
// remembering which were read, so that [Options.Err] can reject both bad values and
// options the driver does not know. Nothing is silently ignored.
//
//	o := driver.NewOptions(u.Query())
//	sync := o.Enum("sync", "always", "always", "batch", "none")
//	timeout := o.Duration("timeout", 2*time.Second)
//	if err := o.Err(); err != nil { return nil, err }
type Options struct {
	values url.Values
	used   map[string]bool
	errs   []string
}

// NewOptions returns a reader over v.
func NewOptions(v url.Values) *Options {
	return &Options{values: v, used: map[string]bool{}}
}

func (o *Options) get(name string) (string, bool) {
	o.used[name] = true
	vs, ok := o.values[name]
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		o.errs = append(o.errs, fmt.Sprintf("option %q given %d times", name, len(vs)))
		return "", false
	}
	return vs[0], true
}

// Has reports whether name was given, and marks it as known.
func (o *Options) Has(name string) bool {
	o.used[name] = true
	_, ok := o.values[name]
	return ok
}

// String returns the value of name, or def when absent.
func (o *Options) String(name, def string) string {
	if v, ok := o.get(name); ok {
		return v
	}
	return def
}

// Enum returns the value of name, which must be one of allowed, or def when absent.
func (o *Options) Enum(name, def string, allowed ...string) string {
	v, ok := o.get(name)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		o.errs = append(o.errs, fmt.Sprintf("option %q: %q is not one of %s", name, v, strings.Join(allowed, ", ")))
		return def
	}
	return v
}

// Bool returns the value of name parsed as a boolean (true/false/1/0), or def.
func (o *Options) Bool(name string, def bool) bool {
	v, ok := o.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		o.errs = append(o.errs, fmt.Sprintf("option %q: %q is not a boolean", name, v))
		return def
	}
	return b
}

// Int returns the value of name as an integer in [min, max], or def.
func (o *Options) Int(name string, def, min, max int) int {
	v, ok := o.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		o.errs = append(o.errs, fmt.Sprintf("option %q: %q is not an integer in [%d, %d]", name, v, min, max))
		return def
	}
	return n
}

// Duration returns the value of name as a positive Go duration ("2s", "5m"), or def.
func (o *Options) Duration(name string, def time.Duration) time.Duration {
	v, ok := o.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		o.errs = append(o.errs, fmt.Sprintf("option %q: %q is not a positive duration such as 2s or 5m", name, v))
		return def
	}
	return d
}

// Err returns an error matching [ErrInvalidConfig] that names every bad option and
// every option that was never read (unknown to the driver), or nil.
func (o *Options) Err() error {
	errs := slices.Clone(o.errs)
	var unknown []string
	for k := range o.values {
		if !o.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		known := make([]string, 0, len(o.used))
		for n := range o.used {
			known = append(known, n)
		}
		slices.Sort(known)
		hint := "this driver takes no options"
		if len(known) > 0 {
			hint = "known options: " + strings.Join(known, ", ")
		}
		errs = append(errs, fmt.Sprintf("unknown option %q (%s)", k, hint))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(errs, "; "))
}
