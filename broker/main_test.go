package broker_test

import (
	"os"
	"testing"

	"github.com/mqttstore/mqttstore/internal/pgtest"
)

// TestMain runs the broker child process of the SIGKILL test when asked to, and the
// tests otherwise (terminating the shared PostgreSQL container at the end).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	pgtest.Main(m)
}
