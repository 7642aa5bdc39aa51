package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Paging: every iteration (packets, sessions, expired sessions, retained messages)
// crosses the page sizes drivers use with exactly-page-size, page-size±1 and sparse
// results, and long queues are mostly deleted during an iteration that carries on
// and is resumed.

func runPaging(t *testing.T, h Harness) { runCases(t, h, pagingCases) }

// pageSizes returns the result sizes the Paging cases try: around the page sizes
// drivers commonly use and the harness's own.
func (h Harness) pageSizes() []int {
	bases := []int{256, 512}
	if !testing.Short() {
		bases = append(bases, 128, 1024)
	}
	if h.PageSize > 1 && !slices.Contains(bases, h.PageSize) {
		bases = append(bases, h.PageSize, 2*h.PageSize)
	}
	var out []int
	for _, b := range bases {
		out = append(out, b-1, b, b+1)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// fillQueue appends n packets to (id, c) in one batch and returns them with their
// seqs.
func (e *env) fillQueue(id string, c persistence.PacketClass, from, n int) []*persistence.PersistedPacket {
	var b persistence.Batch
	ps := make([]*persistence.PersistedPacket, n)
	for i := range n {
		ps[i] = pkt(from + i)
		b.PacketAppend(id, c, ps[i])
	}
	seqs, err := e.ss.Apply(e.ctx, &b)
	e.ok(err, "Apply of %d appends to (%q, %s)", n, id, c)
	for i := range ps {
		ps[i].Seq = seqs[i]
	}
	return ps
}

// createMany creates sessions ids in batches of at most 500.
func (e *env) createMany(ids []string) {
	for len(ids) > 0 {
		k := min(len(ids), 500)
		var b persistence.Batch
		for _, id := range ids[:k] {
			b.Create(id, e.base())
		}
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of %d Creates", k)
		ids = ids[k:]
	}
}

var pagingCases = []tcase{
	{"PacketsAtPageBoundaries", func(e *env) {
		for _, n := range e.h.pageSizes() {
			id := fmt.Sprintf("p%d", n)
			e.create(id)
			q := e.fillQueue(id, cq, 0, n)
			e.queue(id, cq, q)
			// Delete exactly the first page from an iteration that stops there,
			// then read the rest: the next page starts at the right packet.
			k := 0
			err := e.ss.PacketsForEach(e.ctx, id, cq, func(*persistence.PersistedPacket) (bool, error) {
				k++
				if k == n-1 {
					return true, persistence.ErrStopIteration
				}
				return true, nil
			})
			e.ok(err, "PacketsForEach deleting %d of %d packets then stopping", n-1, n)
			e.queue(id, cq, q[n-1:])
		}
	}},
	{"SessionsAtPageBoundaries", func(e *env) {
		for _, n := range e.h.pageSizes() {
			p := e.fresh()
			e.setStore(p)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("s%05d", i)
			}
			e.createMany(ids)
			all := e.loadAll()
			if len(all) != n {
				e.fatalf("LoadForEach over %d sessions visited %d (a page boundary drops or repeats one)", n, len(all))
			}
			for _, id := range ids {
				if all[id] == nil {
					e.fatalf("LoadForEach over %d sessions did not visit %q", n, id)
				}
			}
			c, err := e.ss.Count(e.ctx)
			e.ok(err, "Count")
			if c != uint64(n) {
				e.fatalf("Count = %d after creating %d sessions", c, n)
			}
		}
	}},
	{"ExpiredAtPageBoundaries", func(e *env) {
		// Deadlines come in runs of three equal ones, so that page boundaries fall
		// inside runs of ties, and run against id order; sessions not yet due sit
		// between the due ones.
		for _, n := range e.h.pageSizes() {
			p := e.fresh()
			e.setStore(p)
			var ids []string
			var b persistence.Batch
			for i := range n {
				id := fmt.Sprintf("d%05d", i)
				ids = append(ids, id)
				b.Create(id, e.base()).ExpiryStore(id, persistence.SessionExpiry{ExpireAt: e.at(-time.Hour - time.Duration(i/3)*time.Second)})
				later := fmt.Sprintf("l%05d", i)
				b.Create(later, e.base()).ExpiryStore(later, persistence.SessionExpiry{WillAt: e.at(time.Duration(i+1) * time.Second)})
			}
			_, err := e.ss.Apply(e.ctx, &b)
			e.ok(err, "Apply")
			var got []string
			var last time.Time
			err = e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(id string, x persistence.SessionExpiry) error {
				d := x.ExpireAt
				if d.IsZero() || (!x.WillAt.IsZero() && x.WillAt.Before(d)) {
					d = x.WillAt
				}
				if d.Before(last) {
					return fmt.Errorf("%q (deadline %s) delivered after a deadline of %s: earliest first", id, fmtTime(d), fmtTime(last))
				}
				last = d
				got = append(got, id)
				return nil
			})
			e.ok(err, "ExpiredForEach over %d due sessions", n)
			slices.Sort(got)
			if !slices.Equal(got, ids) {
				e.fatalf("ExpiredForEach over %d due sessions (and %d not due) visited %d: %s", n, n, len(got), firstDiff(got, ids))
			}
		}
	}},
	{"RetainedAtPageBoundaries", func(e *env) {
		for _, n := range e.h.pageSizes() {
			var msgs []*persistence.RetainedMessage
			var want []string
			for i := range n {
				topic := fmt.Sprintf("t/%05d", i)
				want = append(want, topic)
				msgs = append(msgs, &persistence.RetainedMessage{Topic: topic, Packet: pkt(i)})
			}
			msgs = append(msgs, &persistence.RetainedMessage{Topic: "u/0", Packet: pkt(0)})
			e.ok(e.rs.Store(e.ctx, msgs), "Retained.Store of %d messages", n+1)
			e.matching([]string{"t/#"}, want...)
			e.matching([]string{"t/+"}, want...)
			e.matching(nil, append(slices.Clone(want), "u/0")...)
			e.count(uint64(n + 1))
		}
	}},
	{"SparseRetainedMatches", func(e *env) {
		// A few matches thousands of keys apart: a driver that stops after an empty
		// page, or pages by matches, misses the later ones.
		n := 6000
		if testing.Short() {
			n = 3000
		}
		var msgs []*persistence.RetainedMessage
		var want []string
		for i := range n {
			topic := fmt.Sprintf("k/%05d/x", i)
			if i%1000 == 999 {
				topic = fmt.Sprintf("k/%05d/hit", i)
				want = append(want, topic)
			}
			msgs = append(msgs, &persistence.RetainedMessage{Topic: topic, Packet: pkt(i % 50)})
		}
		e.ok(e.rs.Store(e.ctx, msgs), "Retained.Store of %d messages", n)
		e.matching([]string{"k/+/hit"}, want...)
		e.matching([]string{"+/+/hit"}, want...)
		e.matching([]string{"k/+/hit", "k/00999/#"}, want...)
	}},
	{"SparseDueSessions", func(e *env) {
		n := 3000
		if testing.Short() {
			n = 1500
		}
		var want []string
		var b persistence.Batch
		for i := range n {
			id := fmt.Sprintf("s%05d", i)
			x := persistence.SessionExpiry{ExpireAt: e.at(time.Duration(i+1) * time.Hour)}
			if i%700 == 350 {
				x = persistence.SessionExpiry{WillAt: e.at(-time.Duration(i) * time.Second)}
				want = append(want, id)
			}
			b.Create(id, e.base()).ExpiryStore(id, x)
		}
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		e.expired(e.clock.Now(), want...)
	}},
	{"DeleteMostOfLongQueueDuringIteration", func(e *env) {
		// Delete nine packets in ten from one iteration over a queue of many pages,
		// then iterate again: the kept ones, in order, and nothing else.
		n := 5000
		if testing.Short() {
			n = 2000
		}
		e.create("s")
		q := e.fillQueue("s", cq, 0, n)
		var kept []*persistence.PersistedPacket
		seen := 0
		err := e.ss.PacketsForEach(e.ctx, "s", cq, func(p *persistence.PersistedPacket) (bool, error) {
			if seen >= len(q) || p.Seq != q[seen].Seq {
				return false, fmt.Errorf("packet #%d delivered is seq %d, want seq %d: an iteration deleting most packets lost its place", seen, p.Seq, seqAt(q, seen))
			}
			seen++
			if seen%10 == 0 {
				kept = append(kept, p)
				return false, nil
			}
			return true, nil
		})
		e.ok(err, "PacketsForEach deleting 9 in 10 of %d packets", n)
		if seen != n {
			e.fatalf("PacketsForEach deleting 9 in 10 visited %d of %d packets", seen, n)
		}
		e.queue("s", cq, kept)
	}},
	{"ResumeAfterDeleteHeavyPage", func(e *env) {
		// An iteration deletes the first 700 packets and stops; the next iteration
		// (a broker's next delivery window) starts at packet 700, and so on.
		n := 3000
		if testing.Short() {
			n = 1500
		}
		e.create("s")
		q := e.fillQueue("s", cq, 0, n)
		for start := 0; start < n; start += 700 {
			k := 0
			err := e.ss.PacketsForEach(e.ctx, "s", cq, func(p *persistence.PersistedPacket) (bool, error) {
				if p.Seq != q[start+k].Seq {
					return false, fmt.Errorf("iteration resumed after %d deleted packets delivered seq %d as packet #%d, want seq %d",
						start, p.Seq, start+k, q[start+k].Seq)
				}
				k++
				if k == 700 {
					return true, persistence.ErrStopIteration
				}
				return true, nil
			})
			e.ok(err, "PacketsForEach from packet #%d", start)
			n, err := e.ss.PacketCount(e.ctx, "s", cq)
			e.ok(err, "PacketCount")
			if want := len(q) - min(start+700, len(q)); n != uint64(want) {
				e.fatalf("PacketCount = %d after deleting the first %d packets, want %d", n, start+k, want)
			}
		}
		e.queue("s", cq, nil)
		e.queue("s", cq, e.appendN("s", cq, 3))
	}},
	{"DeleteOutsideIterationThenResume", func(e *env) {
		// Acks by PacketDelete (not from an iteration) of a long run at the head,
		// then an iteration: it starts at the first live packet.
		e.create("s")
		q := e.fillQueue("s", cq, 0, 1200)
		var b persistence.Batch
		for _, p := range q[:900] {
			b.PacketDelete("s", cq, p.Seq)
		}
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of 900 PacketDeletes")
		e.queue("s", cq, q[900:])
		e.ok(e.ss.PacketDelete(e.ctx, "s", cq, q[1000].Seq), "PacketDelete")
		e.queue("s", cq, slices.Concat(q[900:1000], q[1001:]))
	}},
}

func seqAt(q []*persistence.PersistedPacket, i int) uint64 {
	if i < len(q) {
		return q[i].Seq
	}
	return 0
}

// firstDiff describes the first difference of two sorted lists.
func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at #%d: %q, want %q", i, got[i], want[i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("unexpected %q", got[len(want)])
	}
	if len(got) < len(want) {
		return fmt.Sprintf("missing %q", want[len(got)])
	}
	return "same"
}
