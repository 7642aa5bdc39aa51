package driver

import (
	"context"
	"fmt"
)

// RecordKind names one kind of stored record, as [BrokenRecord] reports it.
type RecordKind uint8

// The kinds of stored records a repair can meet.
const (
	// RecordSession is a session's own record (its [SessionBase]). Without it the
	// session cannot be loaded: removing it removes the session with everything it
	// owns, as a Delete does.
	RecordSession RecordKind = iota + 1
	// RecordState is a session's [SessionState].
	RecordState
	// RecordExpiry is a session's [SessionExpiry] (its deadlines).
	RecordExpiry
	// RecordExpiryIndex is an entry of an index of deadlines that a driver keeps
	// apart from RecordExpiry (persistence/kv's "x" keys). It is derived data:
	// [RepairConn.Rebuild] writes it again from the session's deadlines.
	RecordExpiryIndex
	// RecordSubscription is one subscription of a session.
	RecordSubscription
	// RecordPacket is one packet of a session's queue.
	RecordPacket
	// RecordRetained is one retained message.
	RecordRetained
)

var recordKindNames = [...]string{"", "session", "state", "expiry", "expiry-index", "subscription", "packet", "retained"}

// String returns the kind's name: "session", "state", "expiry", "expiry-index",
// "subscription", "packet" or "retained".
func (k RecordKind) String() string {
	if int(k) < len(recordKindNames) && k != 0 {
		return recordKindNames[k]
	}
	return fmt.Sprintf("RecordKind(%d)", uint8(k))
}

// MarshalText returns the kind's name, so that JSON holds "packet" rather than a number.
func (k RecordKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a name String returns.
func (k *RecordKind) UnmarshalText(b []byte) error {
	for i, n := range recordKindNames {
		if i > 0 && n == string(b) {
			*k = RecordKind(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown record kind %q", ErrInvalidArgument, b)
}

// BrokenRecord is a stored record that does not decode, as
// [RepairConn.BrokenForEach] finds it: where it is, and its bytes as stored, so that
// a tool can keep a copy before removing it.
type BrokenRecord struct {
	// Kind is the kind of record.
	Kind RecordKind
	// ID is the session the record belongs to (every kind but RecordRetained). It
	// is empty when even the record's key cannot be read.
	ID string
	// Class and Seq name the packet of a RecordPacket.
	Class PacketClass
	Seq   uint64
	// Name is the subscription's filter (RecordSubscription) or the retained
	// message's topic (RecordRetained) when the driver keeps it outside the broken
	// bytes; empty otherwise (PostgreSQL keeps a filter only inside its blob).
	Name string
	// Key is the driver's own address of the record (a key, or a row's primary
	// key), opaque to callers: [RepairConn.BrokenDelete] finds the record by it.
	Key []byte
	// Raw is the record's bytes as stored (a blob of FORMAT.md, damaged).
	Raw []byte
	// Err says why it does not decode; it matches [ErrBrokenEntry].
	Err error
}

// Fix is one correction of derived data made by [RepairConn.Rebuild].
type Fix struct {
	// Where names what was corrected: "session count", "session \"c1\" class QoS12
	// count", "expiry index entry of session \"c1\"", …
	Where string `json:"where"`
	// Detail says what it held and what it holds now.
	Detail string `json:"detail"`
}

// RepairConn is an optional capability of a [Conn]: the few operations an
// operator's repair needs that the rest of the API deliberately hides. Every write
// of the API keeps derived data (counters, indexes) consistent and no read ever
// returns undecodable bytes; after a disk fault or a bug, these let a tool find
// what is broken, keep a copy of it, remove it, and recompute what is derived.
// They are meant for a store no broker is using.
type RepairConn interface {
	// BrokenForEach reads every record of the store and calls fn, with no
	// transaction open, for each one that does not decode (fn's *BrokenRecord is
	// fn's to keep). It visits nothing on a store whose records all decode. Records
	// already unreachable (garbage awaiting collection) are not visited. A
	// record whose key cannot be read is visited with an empty ID.
	BrokenForEach(ctx context.Context, fn func(r *BrokenRecord) error) error
	// BrokenDelete removes the record r names, as BrokenForEach reported it, if it
	// still holds exactly r.Raw; otherwise (removed already, or rewritten since) it
	// removes nothing and returns an error matching [ErrNotFound]. Removing a
	// RecordSession removes the session and everything it owns; removing any other
	// kind removes that record alone and keeps the counters it is part of
	// consistent. Derived data that pointed at it is fixed by Rebuild.
	BrokenDelete(ctx context.Context, r *BrokenRecord) error
	// Rebuild recomputes from the records every piece of derived data the driver
	// keeps (counters, indexes) and corrects what disagrees, returning one Fix per
	// correction; a store that needs none gets none and is not written. A second
	// Rebuild right after the first returns no Fix.
	Rebuild(ctx context.Context) ([]Fix, error)
}
