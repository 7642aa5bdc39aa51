package postgres

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// TestHashRanges walks the ranges over 20k hashes as LoadForEach does, from an
// exact, a far too low and a far too high row count: every hash falls in exactly
// one range, the ranges follow each other, and their number stays near the
// hashes over the rows wanted per range.
func TestHashRanges(t *testing.T) {
	const n, want = 20000, 1000
	hashes := make([][]byte, n)
	for i := range hashes {
		h := sha256.Sum256(binary.BigEndian.AppendUint32(nil, uint32(i)))
		hashes[i] = h[:]
	}
	for _, tc := range []struct {
		rows      int64
		maxRanges int
	}{{n, 40}, {0, 60}, {1, 60}, {1 << 40, 80}} {
		hr := newHashRanges(tc.rows, want)
		seen := make([]int, n)
		var prevHi []byte
		ranges := 0
		for !hr.done() {
			lo, hi := hr.next()
			ranges++
			if ranges > tc.maxRanges {
				t.Fatalf("rows=%d: more than %d ranges for %d hashes of %d per range", tc.rows, tc.maxRanges, n, want)
			}
			if prevHi == nil && len(lo) != 0 || prevHi != nil && !bytes.Equal(lo, prevHi) {
				t.Fatalf("rows=%d: range %d starts at %x, the previous ended at %x", tc.rows, ranges, lo, prevHi)
			}
			if bytes.Compare(lo, hi) >= 0 {
				t.Fatalf("rows=%d: empty range [%x, %x)", tc.rows, lo, hi)
			}
			prevHi = hi
			in := 0
			for i, h := range hashes {
				if bytes.Compare(h, lo) >= 0 && bytes.Compare(h, hi) < 0 {
					seen[i]++
					in++
				}
			}
			hr.seen(in)
		}
		if !bytes.Equal(prevHi, pastEveryHash) {
			t.Fatalf("rows=%d: the last range ends at %x, not past every hash", tc.rows, prevHi)
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("rows=%d: hash %d is in %d ranges", tc.rows, i, c)
			}
		}
	}
}
