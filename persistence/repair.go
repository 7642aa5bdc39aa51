package persistence

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Repair: the operations an operator's tool (cmd/mqttstore check --repair) needs on
// a damaged store, which the rest of the API hides on purpose: reading the bytes of
// records that do not decode, removing one such record, and recomputing derived
// data (counters, indexes). Run them on a store no broker is using. Drivers offer
// them through driver.RepairConn; on one that does not, they return
// [ErrNotSupported].

type (
	// RecordKind names one kind of stored record: [RecordSession], [RecordState],
	// [RecordExpiry], [RecordExpiryIndex], [RecordSubscription], [RecordPacket] or
	// [RecordRetained].
	RecordKind = driver.RecordKind
	// BrokenRecord is a stored record that does not decode: its kind, where it is
	// (session, class and sequence number, filter or topic), the driver's key and
	// its bytes as stored.
	BrokenRecord = driver.BrokenRecord
	// Fix is one correction of derived data made by [Store.Rebuild].
	Fix = driver.Fix
)

// The kinds of stored records (see driver.RecordKind for what each holds).
const (
	RecordSession      = driver.RecordSession
	RecordState        = driver.RecordState
	RecordExpiry       = driver.RecordExpiry
	RecordExpiryIndex  = driver.RecordExpiryIndex
	RecordSubscription = driver.RecordSubscription
	RecordPacket       = driver.RecordPacket
	RecordRetained     = driver.RecordRetained
)

// repairConn returns the driver's repair capability, or ErrNotSupported.
func (s *Store) repairConn() (driver.RepairConn, error) {
	rc, ok := s.conn.(driver.RepairConn)
	if !ok {
		info, _ := s.conn.Info(context.Background())
		return nil, fmt.Errorf("%w: driver %q offers no repair operations", ErrNotSupported, info.Driver)
	}
	return rc, nil
}

// BrokenForEach reads every record of the store and calls fn for each one that
// does not decode, with its kind, location and bytes as stored; fn's *BrokenRecord
// is fn's to keep. A store whose records all decode visits nothing. It reads the
// whole store: it is a tool's operation, not a broker's.
func (s *Store) BrokenForEach(ctx context.Context, fn func(r *BrokenRecord) error) error {
	ctx, c, err := s.begin(ctx, "BrokenForEach", 0)
	if err == nil && fn == nil {
		err = invalidArg("nil BrokenForEach callback")
	}
	if err != nil {
		return c.end(err)
	}
	rc, err := s.repairConn()
	if err != nil {
		return c.end(err)
	}
	return c.end(rc.BrokenForEach(ctx, func(r *BrokenRecord) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(r)
	}))
}

// BrokenDelete removes the record r names, as [Store.BrokenForEach] reported it,
// if it still holds exactly r.Raw; otherwise it removes nothing and returns an
// error matching [ErrNotFound]. Removing a [RecordSession] removes the session with
// everything it owns (read what can still be read of it first:
// [Sessions.SubscriptionsLoad], [Sessions.StateGet], [Sessions.PacketsForEach]
// work on a session whose own record is broken). Call [Store.Rebuild] afterwards.
func (s *Store) BrokenDelete(ctx context.Context, r *BrokenRecord) error {
	ctx, c, err := s.begin(ctx, "BrokenDelete", 1)
	if err == nil && r == nil {
		err = invalidArg("nil BrokenRecord")
	}
	if err == nil && (r.Kind < RecordSession || r.Kind > RecordRetained) {
		err = invalidArg("broken record of kind %d", uint8(r.Kind))
	}
	if err != nil {
		return c.end(err)
	}
	rc, err := s.repairConn()
	if err != nil {
		return c.end(err)
	}
	return c.end(rc.BrokenDelete(ctx, r))
}

// Rebuild recomputes every piece of derived data the driver keeps (session,
// packet and retained counters, the expiry index) from the records and corrects
// what disagrees, returning one [Fix] per correction. A consistent store gets no
// Fix and is not written, so running it twice is harmless.
func (s *Store) Rebuild(ctx context.Context) ([]Fix, error) {
	ctx, c, err := s.begin(ctx, "Rebuild", 0)
	if err != nil {
		return nil, c.end(err)
	}
	rc, err := s.repairConn()
	if err != nil {
		return nil, c.end(err)
	}
	fixes, err := rc.Rebuild(ctx)
	return fixes, c.end(err)
}
