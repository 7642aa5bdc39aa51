package postgres_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/providers/postgres/pgtest"
)

// TestMain terminates the binary's shared PostgreSQL container when the tests end.
func TestMain(m *testing.M) { pgtest.Main(m) }
