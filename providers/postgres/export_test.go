package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/persistence"
)

// Crash abandons p as a killed process would: its pool is closed under it, with no
// Close of the provider (no committer drain), and p is left unusable.
func Crash(p persistence.Provider) {
	pp := p.(*provider)
	pp.pool.Close()
	for _, c := range pp.committers {
		c.Close()
	}
}

// Pool returns the provider's pgx pool, for tests that look at the database
// underneath the driver (its search_path is the provider's schema).
func Pool(p persistence.Provider) *pgxpool.Pool { return p.(*provider).pool }
