package persistence

import (
	"errors"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://u:s3cret@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u@h/db?password=s3cret&schema=x", "postgres://u@h/db?password=xxxxx&schema=x"},
		{"postgres://h/db?sslpassword=s3cret", "postgres://h/db?sslpassword=xxxxx"},
		{"bolt:///var/lib/x.db?sync=always", "bolt:///var/lib/x.db?sync=always"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Redact("postgres://u:s3cret@[::1/db"); strings.Contains(got, "s3cret") {
		t.Errorf("Redact of an unparsable URL kept the password: %q", got)
	}
}

// No error of Open, on any parse path, carries the password.
func TestOpenErrorsNeverShowPassword(t *testing.T) {
	registerForTest(t, "regtest", &optionsDriver{err: errors.New("cannot reach u:s3cret@host")})
	for _, dsn := range []string{
		"regtest://u:s3cret@host:port/x",
		"regtest://u:s3cret@[::1/x",
		"regtest://u:s3cret@h/x?sync=bad",
		"regtest://h/x?password=s3cret&%zz",
		"regtest://u:s3cret@h/x",
		"nosuch://u:s3cret@h/x",
		"u:s3cret@h/x",
	} {
		_, err := Open(testContext(t), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", dsn, err)
		}
	}
}
