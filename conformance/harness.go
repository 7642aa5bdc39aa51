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
	// Shared opens a second provider on the data of p, which stays open, with
	// opts, as a second broker on the same database does; it registers the new
	// store's cleanup with t.Cleanup. It declares that the driver can be shared
	// (its Conn implements driver.Sharer, so persistence.Store.Shared is true):
	// the SharedStore cases then run with two and three providers on one store. nil
	// declares that it cannot: the SharedStore cases check that every shared-store
	// call returns persistence.ErrNotSupported.
	Shared func(t testing.TB, p *persistence.Store, opts ...persistence.OpenOption) *persistence.Store
	// Corrupt, when not nil, overwrites in place the stored bytes of the record of
	// p (open) that r names (r.Kind and r.ID; r.Class and r.Seq of a packet; r.Name,
	// the filter or topic, of a subscription or retained message) with bytes that no
	// longer decode, as a bad disk sector would; it calls t.Fatal when there is no
	// such record. The Repair cases that need broken records use it; nil reports
	// them as not applicable (only a driver that keeps no encoded bytes, as mem, may
	// leave it nil).
	Corrupt func(t testing.TB, p *persistence.Store, r persistence.BrokenRecord)
	// Caps declares physical limits of the driver.
	Caps Capabilities
	// CaseTimeout bounds every case; 0 means 30 seconds. A driver that hangs fails
	// the case at the deadline instead of hanging the test binary. The cleanups a
	// hook registers with t.Cleanup (closing its stores) are bounded too: one that
	// has not returned after CloseTimeout fails the case and is abandoned, so that a
	// driver whose Close waits on a stuck callback cannot hang the test binary.
	CaseTimeout time.Duration
	// CloseTimeout bounds each cleanup a hook registered; 0 means 10 seconds.
	CloseTimeout time.Duration
	// PlantSchema, when not nil, makes the data of a new, isolated store recorded as
	// written by schema version (as an SDK whose persistence.SchemaVersion is
	// version would have left it: its SystemInfo, migration table or whatever the
	// driver checks on open), then opens that data as a user would, with opts, and
	// returns what opening returned. A store it returns is closed by a cleanup it
	// registers. The Schema cases call it with versions newer than
	// persistence.SchemaVersion, which must be refused with ErrSchemaVersion and no
	// store, and with persistence.SchemaVersion, which must open. nil reports the
	// Schema cases as not applicable: only a driver that keeps nothing across Close
	// (as mem) may leave it nil.
	PlantSchema func(t testing.TB, version uint32, opts ...persistence.OpenOption) (*persistence.Store, error)
	// PageSize, when not 0, is the number of items the driver reads per page in
	// its iterations. The Paging cases always try sizes around 128, 256, 512 and
	// 1024; they add PageSize and its neighbours.
	PageSize int
}

// closeTimeout is the bound of one cleanup registered by a hook.
func (h Harness) closeTimeout() time.Duration {
	if h.CloseTimeout > 0 {
		return h.CloseTimeout
	}
	return 10 * time.Second
}

// boundedTB is the testing.TB the suite passes to the harness's hooks: its
// Cleanup runs each cleanup in its own goroutine and gives up on it after the
// harness's CloseTimeout, failing the test, so that a store whose Close blocks
// forever (on a lock held by a stuck callback, say) cannot hang the test binary.
type boundedTB struct {
	testing.TB
	bound time.Duration
}

func (h Harness) bounded(t testing.TB) testing.TB {
	if b, ok := t.(boundedTB); ok {
		return b
	}
	return boundedTB{TB: t, bound: h.closeTimeout()}
}

// Cleanup registers f to run, bounded, when the test ends.
func (b boundedTB) Cleanup(f func()) {
	t := b.TB
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		timer := time.NewTimer(b.bound)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			t.Errorf("a cleanup the harness registered (closing a store) did not return within %v: "+
				"the driver's Close blocks, probably on a lock held by a stuck call or callback; abandoned", b.bound)
		}
	})
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
