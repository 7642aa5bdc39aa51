package postgres_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/internal/pgtest"
)

// TestMain terminates the binary's shared PostgreSQL container when the tests end,
// and says so visibly when they could not reach a server.
func TestMain(m *testing.M) { pgtest.Main(m) }
