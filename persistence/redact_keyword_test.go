package persistence

import (
	"strings"
	"testing"
)

// TestRedactKeywordValue: a keyword/value DSN (not a URL) keeps no secret.
func TestRedactKeywordValue(t *testing.T) {
	for dsn, secret := range map[string]string{
		"host=h port=1 user=u password=Pw-plain dbname=db":  "Pw-plain",
		"host=h password = 'Pw quoted' dbname=db":           "Pw quoted",
		"host=h sslpassword=Pw-ssl PASSWORD=Pw-upper":       "Pw-",
		"user=u password='Pw \\' escaped' host=h dbname=db": "escaped",
	} {
		if got := Redact(dsn); strings.Contains(got, secret) {
			t.Errorf("Redact(%q) = %q", dsn, got)
		}
		err := redactErr(errString("cannot use "+dsn), dsn)
		if strings.Contains(err.Error(), secret) {
			t.Errorf("redactErr for %q = %q", dsn, err)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
