package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/persistence"
)

// Crash abandons s as a killed process would: its pool is closed under it, with no
// Close of the store (no committer drain), and s is left unusable.
func Crash(s *persistence.Store) {
	c := s.Driver().(*conn)
	c.pool.Close()
	for _, cm := range c.committers {
		cm.Close()
	}
}

// Pool returns the store's pgx pool, for tests that look at the database
// underneath the driver (its search_path is the store's schema when the driver
// made the pool).
func Pool(s *persistence.Store) *pgxpool.Pool { return s.Driver().(*conn).pool }

// SetLoadBudget sets the table heap LoadForEach reads per range, so that a test
// can read a small store in many ranges.
func SetLoadBudget(s *persistence.Store, bytes int64) { s.Driver().(*conn).loadBudget = bytes }

// SetStatsPage sets how many sessions one PacketStatsForEach round trip covers.
func SetStatsPage(s *persistence.Store, n int) { s.Driver().(*conn).statsPage = n }
