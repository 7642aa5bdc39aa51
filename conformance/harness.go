package conformance

import (
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Harness tells the suite how to make stores of the driver under test. Every hook
// returns a *persistence.Store opened as a user opens one, with
// persistence.OpenConnector or persistence.Open, and passes the options it is given
// through to it. A hook that fails calls t.Fatal.
type Harness struct {
	// New returns a new, empty store isolated from every other store New returned
	// (its own temporary directory, database schema, …), opened with opts. It
	// registers its own cleanup with t.Cleanup. Required.
	New func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store
	// Reopen closes p and opens the same data again with opts, as a broker restart
	// does. nil declares that the driver keeps nothing across Close (as mem does):
	// the Durability cases then report themselves as not applicable.
	Reopen func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store
	// Crash abandons p without calling Close, as a killed process would, and opens
	// the same data again with opts. It may release the resources of p's driver
	// connection (p.Driver()): file locks, pool connections, in any way that does not
	// flush state Close would have flushed. nil declares crash recovery not
	// applicable.
	Crash func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store
	// Caps declares physical limits of the driver.
	Caps Capabilities
	// CaseTimeout bounds every case; 0 means 30 seconds. A driver that hangs fails
	// the case at the deadline instead of hanging the test binary.
	CaseTimeout time.Duration
}

// Capabilities declares physical limits. They may only excuse sizes a backend cannot
// hold, never semantics.
type Capabilities struct {
	// MaxPayload is the largest PersistedPacket.Data the driver stores; 0 means at
	// least 16 MiB (the suite's largest payload).
	MaxPayload int
}

// Clock is a fake [persistence.Clock] the suite passes to stores (through
// [persistence.WithClock]) so that timestamps are predictable. It only moves when
// told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
