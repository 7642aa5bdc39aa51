package bolt_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
)

// TestCrash SIGKILLs a child process writing to a bbolt file with sync=always, at
// least 20 times, and checks after each kill that nothing acknowledged was lost and
// nothing half-applied is visible (see conformance.RunCrash).
func TestCrash(t *testing.T) {
	conformance.RunCrash(t, conformance.CrashHarness{
		NewTarget: func(t testing.TB) string { return fileURL("always")(t.TempDir()) },
	})
}
