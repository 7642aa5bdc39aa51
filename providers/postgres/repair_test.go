package postgres_test

import (
	"testing"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
)

// corrupt is the harness's Corrupt (pgtest.Corrupt on the store's schema).
func corrupt(t testing.TB, p *persistence.Store, r persistence.BrokenRecord) {
	t.Helper()
	pgtest.Corrupt(t, dsnOf(t, p), r)
}
