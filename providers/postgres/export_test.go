package postgres

import "github.com/mqttstore/mqttstore/persistence"

// Crash abandons p as a killed process would: its pool is closed under it, with no
// Close of the provider (no committer drain), and p is left unusable.
func Crash(p persistence.Provider) {
	pp := p.(*provider)
	pp.pool.Close()
	if pp.committer != nil {
		pp.committer.Close()
	}
}

// Pool returns the provider's pgx pool, for tests that look at the database.
func Pool(p persistence.Provider) any { return p.(*provider).pool }
