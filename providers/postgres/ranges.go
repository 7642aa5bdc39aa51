package postgres

import (
	"encoding/binary"
	"math"
)

// hashRanges cuts the key space of the session hashes (SHA-256, so uniformly
// spread) into consecutive ranges [lo, hi) that each hold about want rows, for
// reading a whole table in pages without sorting it or counting off rows: a range
// of hashes is one bitmap scan of a primary key, and rows arrive in the order the
// heap keeps them. The ranges are cut on the hashes' first 8 bytes; the first
// starts below every hash and the last ends above every hash, so together they
// cover every row once, whatever is inserted or deleted meanwhile. The width of
// each range follows the density of the ranges read so far, so a stale row
// count only costs a few ranges of the wrong size.
type hashRanges struct {
	lo    uint64  // the next range's first 8-byte prefix
	width float64 // prefixes per range
	want  int
	begun bool // the first range was handed out
	last  bool // the range handed out last reaches past every hash
}

// prefixes is the number of 8-byte prefixes, 2^64.
const prefixes float64 = 1 << 64

// newHashRanges returns ranges of about want rows each over rows rows.
func newHashRanges(rows int64, want int) *hashRanges {
	return &hashRanges{width: prefixes * float64(want) / float64(max(rows, 1)), want: want}
}

// done reports whether every range was handed out.
func (r *hashRanges) done() bool { return r.last }

// next returns the next range's bounds, lo inclusive and hi exclusive.
func (r *hashRanges) next() (lo, hi []byte) {
	lo = []byte{} // sorts before every hash
	if r.begun {
		lo = binary.BigEndian.AppendUint64(nil, r.lo)
	}
	r.begun = true
	if float64(r.lo)+r.width >= prefixes {
		r.last = true
		return lo, pastEveryHash
	}
	r.lo += uint64(max(r.width, 1))
	return lo, binary.BigEndian.AppendUint64(nil, r.lo)
}

// seen adapts the width of the next ranges to the n rows the last one held:
// within a factor of 4 per step, since a small range says little about density.
func (r *hashRanges) seen(n int) {
	f := 4.0
	if n > 0 {
		f = math.Min(math.Max(float64(r.want)/float64(n), 0.25), 4)
	}
	r.width = math.Min(r.width*f, prefixes)
}
