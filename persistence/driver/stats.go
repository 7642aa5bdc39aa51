package driver

import "context"

// ClassStats is the size of one packet class of one session.
type ClassStats struct {
	// Count is the number of packets.
	Count uint64
	// Bytes is the sum of the packets' len(Data).
	Bytes uint64
}

// PacketStats is the size of every packet class of one session.
type PacketStats struct {
	ID string
	// Classes holds the stats of each class at index class-1 (see [PacketStats.Class]).
	Classes [4]ClassStats
}

// Class returns the stats of class c (zero for an invalid class).
func (p *PacketStats) Class(c PacketClass) ClassStats {
	if !c.Valid() {
		return ClassStats{}
	}
	return p.Classes[c-1]
}

// Add counts one packet of class c with data bytes of Data.
func (p *PacketStats) Add(c PacketClass, data int) {
	if c.Valid() {
		p.Classes[c-1].Count++
		p.Classes[c-1].Bytes += uint64(data)
	}
}

// Empty reports whether every class is empty.
func (p *PacketStats) Empty() bool { return p.Classes == [4]ClassStats{} }

// PacketStatsLoader is called by persistence.Sessions.PacketStatsForEach once per
// session. Returning an error (other than [ErrStopIteration]) stops the iteration and
// is returned.
type PacketStatsLoader func(st *PacketStats) error

// PacketStatsConn is an optional capability of a [Conn]: the packet counts and sizes
// of every session, by class, in a few set-based reads instead of one read per
// session and class. persistence.Sessions.PacketStatsForEach uses it when the Conn
// has it and otherwise derives the same result from LoadForEach and PacketsForEach.
type PacketStatsConn interface {
	// PacketStatsForEach calls fn once for every session that holds at least one
	// packet, in no particular order, with the count and the sum of len(Data) of
	// each class. A session without packets may be visited (with zero stats) or
	// not. fn runs as the callbacks of LoadForEach do (see [Conn]).
	PacketStatsForEach(ctx context.Context, fn PacketStatsLoader) error
}
