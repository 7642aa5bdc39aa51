package conformance

import (
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Bulk: the SDK's bulk operations, whether a driver implements them itself or the
// SDK derives them from the Conn methods. Sessions.PacketStatsForEach (counts and
// data sizes of every session's classes, as a broker reads them at start-up),
// Batch.Concat, and Applies whose appends and deletes span several sessions in one
// run (a fan-out, a move to in-flight, acknowledgements), which drivers may write
// as one statement: all or nothing, a missing session anywhere is ErrNotFound.

func runBulk(t *testing.T, h Harness) { runCases(t, h, bulkCases) }

// statsOf runs PacketStatsForEach and returns the non-empty stats by session,
// failing the case when a session is visited twice.
func (e *env) statsOf() map[string]persistence.PacketStats {
	got := map[string]persistence.PacketStats{}
	err := e.ss.PacketStatsForEach(e.ctx, func(st *persistence.PacketStats) error {
		if _, dup := got[st.ID]; dup {
			e.errorf("PacketStatsForEach visited session %q twice", st.ID)
		}
		if !st.Empty() {
			got[st.ID] = *st
		}
		return nil
	})
	e.ok(err, "PacketStatsForEach")
	return got
}

// wantStats computes the stats of the given queues.
func wantStats(queues map[string]map[persistence.PacketClass][]*persistence.PersistedPacket) map[string]persistence.PacketStats {
	out := map[string]persistence.PacketStats{}
	for id, byClass := range queues {
		st := persistence.PacketStats{ID: id}
		for c, q := range byClass {
			for _, p := range q {
				st.Add(c, len(p.Data))
			}
		}
		if !st.Empty() {
			out[id] = st
		}
	}
	return out
}

func diffStats(got, want map[string]persistence.PacketStats) string {
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			return fmt.Sprintf("session %q not visited, want %+v", id, w.Classes)
		}
		if g.Classes != w.Classes {
			return fmt.Sprintf("session %q: got %+v, want %+v (count and bytes of QoS0, QoS12, UnAck, Incoming)", id, g.Classes, w.Classes)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("session %q visited with %+v, but it holds no packet", id, g.Classes)
		}
	}
	return ""
}

// sizes are payload sizes around the boundaries of a length prefix.
var bulkSizes = []int{0, 1, 100, 126, 127, 128, 129, 200, 16381, 16383, 16384, 16385, 70000}

var bulkCases = []tcase{
	{"StatsOfEmptyStore", func(e *env) {
		e.eq(diffStats(e.statsOf(), nil), "PacketStatsForEach of an empty store")
		e.create("a", "b")
		e.eq(diffStats(e.statsOf(), nil), "PacketStatsForEach of sessions without packets")
	}},
	{"StatsByClassAndSize", func(e *env) {
		e.create("a", "b", "c", "d\x00\xff")
		queues := map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{}
		add := func(id string, c persistence.PacketClass, p *persistence.PersistedPacket) {
			_, err := e.ss.PacketAppend(e.ctx, id, c, p)
			e.ok(err, "PacketAppend(%q, %s)", id, c)
			if queues[id] == nil {
				queues[id] = map[persistence.PacketClass][]*persistence.PersistedPacket{}
			}
			queues[id][c] = append(queues[id][c], p)
		}
		for i := range 3 {
			add("a", persistence.ClassQoS12, pkt(i)) // with an expiry
		}
		add("a", persistence.ClassUnAck, pkt(9))
		for i, n := range bulkSizes {
			p := pktData(bigData(n)) // no expiry
			if i%2 == 1 {
				p = pkt(i)
				p.Data = bigData(n) // an expiry and a large length prefix
			}
			add("b", persistence.ClassQoS12, p)
		}
		add("c", persistence.ClassQoS12, pkt(5)) // two identical packets with an expiry
		add("c", persistence.ClassQoS12, pkt(5))
		add("d\x00\xff", persistence.ClassQoS0, pktData([]byte("q0")))
		add("d\x00\xff", persistence.ClassIncoming, pkt(4))
		e.eq(diffStats(e.statsOf(), wantStats(queues)), "PacketStatsForEach")
	}},
	{"StatsAfterDeletesAndReopen", func(e *env) {
		e.create("a", "b", "c")
		qa := e.appendN("a", persistence.ClassQoS12, 5)
		qb := e.appendN("b", persistence.ClassUnAck, 4)
		e.appendN("c", persistence.ClassQoS12, 2)
		var b persistence.Batch
		b.PacketDelete("a", persistence.ClassQoS12, qa[1].Seq).PacketDelete("b", persistence.ClassUnAck, qb[0].Seq)
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(deletes in two sessions)")
		e.ok(e.ss.Delete(e.ctx, "c"), "Delete(c)")
		want := wantStats(map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{
			"a": {persistence.ClassQoS12: without(qa, qa[1].Seq)},
			"b": {persistence.ClassUnAck: without(qb, qb[0].Seq)},
		})
		e.eq(diffStats(e.statsOf(), want), "PacketStatsForEach after deletes")
		if e.h.Reopen != nil {
			e.reopen(false)
			e.eq(diffStats(e.statsOf(), want), "PacketStatsForEach after a reopen")
		}
	}},
	{"StatsManySessions", func(e *env) {
		const n = 1500
		queues := map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{}
		var b persistence.Batch
		for i := range n {
			id := fmt.Sprintf("s%04d", i)
			b.Create(id, e.base())
			if i%3 != 0 {
				p := pkt(i)
				b.PacketAppend(id, persistence.ClassQoS12, p)
				queues[id] = map[persistence.PacketClass][]*persistence.PersistedPacket{persistence.ClassQoS12: {p}}
			}
			if b.Len() >= 300 {
				_, err := e.ss.Apply(e.ctx, &b)
				e.ok(err, "Apply(create and append)")
				b.Reset()
			}
		}
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(create and append)")
		e.eq(diffStats(e.statsOf(), wantStats(queues)), "PacketStatsForEach of %d sessions", n)
	}},
	{"StatsStopErrorNil", func(e *env) {
		e.create("a", "b")
		e.appendN("a", persistence.ClassQoS12, 1)
		e.appendN("b", persistence.ClassQoS12, 1)
		calls := 0
		err := e.ss.PacketStatsForEach(e.ctx, func(*persistence.PacketStats) error {
			calls++
			return persistence.ErrStopIteration
		})
		e.ok(err, "PacketStatsForEach stopped with ErrStopIteration")
		if calls != 1 {
			e.fatalf("PacketStatsForEach called fn %d times after ErrStopIteration, want 1", calls)
		}
		err = e.ss.PacketStatsForEach(e.ctx, func(*persistence.PacketStats) error { return errCase })
		e.is(err, errCase, "PacketStatsForEach whose callback fails")
		e.is(e.ss.PacketStatsForEach(e.ctx, nil), persistence.ErrInvalidArgument, "PacketStatsForEach(nil)")
	}},
	{"StatsCallbackMayWrite", func(e *env) {
		e.create("a", "b")
		e.appendN("a", persistence.ClassQoS12, 2)
		e.appendN("b", persistence.ClassQoS12, 2)
		err := e.ss.PacketStatsForEach(e.ctx, func(st *persistence.PacketStats) error {
			_, err := e.ss.PacketAppend(e.ctx, st.ID, persistence.ClassUnAck, pkt(1))
			return err
		})
		e.ok(err, "PacketStatsForEach whose callback appends to the store")
	}},
	{"ConcatOrderAndSeqs", func(e *env) {
		e.create("a", "b")
		qa := e.appendN("a", persistence.ClassUnAck, 3)
		var dels, apps persistence.Batch
		dels.PacketDelete("a", persistence.ClassUnAck, qa[0].Seq).PacketDelete("a", persistence.ClassUnAck, qa[2].Seq)
		pb, pa := pkt(20), pkt(21)
		apps.PacketAppend("b", persistence.ClassQoS12, pb).PacketAppend("a", persistence.ClassUnAck, pa)
		dels.Concat(&apps)
		if dels.Len() != 4 || dels.Appends() != 2 || apps.Len() != 0 || apps.Appends() != 0 {
			e.fatalf("Concat: got %d ops (%d appends) and %d left (%d appends), want 4 (2) and 0 (0)",
				dels.Len(), dels.Appends(), apps.Len(), apps.Appends())
		}
		seqs, err := e.ss.Apply(e.ctx, &dels)
		e.ok(err, "Apply(concatenated batch)")
		if len(seqs) != 2 {
			e.fatalf("Apply returned %d seqs, want 2", len(seqs))
		}
		pb.Seq, pa.Seq = seqs[0], seqs[1]
		e.queue("a", persistence.ClassUnAck, []*persistence.PersistedPacket{qa[1], pa})
		e.queue("b", persistence.ClassQoS12, []*persistence.PersistedPacket{pb})
	}},
	{"AppendsToManySessionsInOneApply", func(e *env) {
		ids := []string{"a", "b", "c", "d"}
		e.create(ids...)
		var b persistence.Batch
		want := map[string][]*persistence.PersistedPacket{}
		var order []*persistence.PersistedPacket
		for r := range 3 {
			for i, id := range ids {
				p := pkt(r*10 + i)
				b.PacketAppend(id, persistence.PacketClasses[i], p)
				want[id] = append(want[id], p)
				order = append(order, p)
			}
		}
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(12 appends to 4 sessions)")
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				e.fatalf("Apply's seqs %v do not increase in append order", seqs)
			}
		}
		for k, p := range order {
			p.Seq = seqs[k]
		}
		for i, id := range ids {
			e.queue(id, persistence.PacketClasses[i], want[id])
		}
	}},
	{"AppendsWithMissingSessionWriteNothing", func(e *env) {
		e.create("a", "b")
		var b persistence.Batch
		b.PacketAppend("a", persistence.ClassQoS12, pkt(1)).
			PacketAppend("missing", persistence.ClassQoS12, pkt(2)).
			PacketAppend("b", persistence.ClassQoS12, pkt(3))
		_, err := e.ss.Apply(e.ctx, &b)
		e.is(err, persistence.ErrNotFound, "Apply(appends to a, a missing session, b)")
		e.queue("a", persistence.ClassQoS12, nil)
		e.queue("b", persistence.ClassQoS12, nil)
		if ok, _ := e.ss.Exists(e.ctx, "missing"); ok {
			e.fatalf("Apply created the missing session")
		}
	}},
	{"DeletesAcrossSessionsAndClasses", func(e *env) {
		e.create("a", "b")
		qa := e.appendN("a", persistence.ClassUnAck, 4)
		qb := e.appendN("b", persistence.ClassQoS12, 4)
		var b persistence.Batch
		b.PacketDelete("a", persistence.ClassUnAck, qa[0].Seq).
			PacketDelete("b", persistence.ClassQoS12, qb[1].Seq).
			PacketDelete("a", persistence.ClassUnAck, qa[3].Seq).
			PacketDelete("a", persistence.ClassQoS12, qa[1].Seq). // wrong class: a no-op
			PacketDelete("b", persistence.ClassQoS12, qb[1].Seq). // twice
			PacketDelete("b", persistence.ClassQoS12, 1<<62)      // missing: a no-op
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(deletes across sessions and classes)")
		e.queue("a", persistence.ClassUnAck, []*persistence.PersistedPacket{qa[1], qa[2]})
		e.queue("b", persistence.ClassQoS12, without(qb, qb[1].Seq))
	}},
	{"DeletesWithMissingSessionDeleteNothing", func(e *env) {
		e.create("a", "b")
		qa := e.appendN("a", persistence.ClassUnAck, 2)
		qb := e.appendN("b", persistence.ClassUnAck, 2)
		var b persistence.Batch
		b.PacketDelete("a", persistence.ClassUnAck, qa[0].Seq).
			PacketDelete("missing", persistence.ClassUnAck, 1).
			PacketDelete("b", persistence.ClassUnAck, qb[0].Seq)
		_, err := e.ss.Apply(e.ctx, &b)
		e.is(err, persistence.ErrNotFound, "Apply(deletes in a, a missing session, b)")
		e.queue("a", persistence.ClassUnAck, qa)
		e.queue("b", persistence.ClassUnAck, qb)
	}},
	{"DeletesThenAppendsAcrossSessions", func(e *env) {
		// A broker's move to in-flight: deletes from one class, appends to
		// another, for several sessions, in one commit.
		e.create("a", "b")
		qa := e.appendN("a", persistence.ClassQoS12, 3)
		qb := e.appendN("b", persistence.ClassQoS12, 3)
		var dels, apps persistence.Batch
		var moved []*persistence.PersistedPacket
		for _, q := range []struct {
			id string
			q  []*persistence.PersistedPacket
		}{{"a", qa}, {"b", qb}} {
			for _, p := range q.q[:2] {
				dels.PacketDelete(q.id, persistence.ClassQoS12, p.Seq)
				m := *p
				apps.PacketAppend(q.id, persistence.ClassUnAck, &m)
				moved = append(moved, &m)
			}
		}
		seqs, err := e.ss.Apply(e.ctx, dels.Concat(&apps))
		e.ok(err, "Apply(move two packets of two sessions in flight)")
		for i := range moved {
			moved[i].Seq = seqs[i]
		}
		e.queue("a", persistence.ClassQoS12, qa[2:])
		e.queue("b", persistence.ClassQoS12, qb[2:])
		e.queue("a", persistence.ClassUnAck, moved[:2])
		e.queue("b", persistence.ClassUnAck, moved[2:])
	}},
}
