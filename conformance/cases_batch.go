package conformance

import (
	"slices"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Batch: Sessions.Apply commits all of a batch or none of it.

func runBatch(t *testing.T, h Harness) { runCases(t, h, batchCases) }

// failsAtomically applies b, expects an error matching want, and checks that the
// store did not change.
func (e *env) failsAtomically(b *persistence.Batch, want error, what string) {
	before := e.snapshot()
	seqs, err := e.ss.Apply(e.ctx, b)
	e.is(err, want, "Apply(%s)", what)
	if len(seqs) != 0 {
		e.fatalf("a failed Apply(%s) returned %d seqs", what, len(seqs))
	}
	e.eq(diffSnap(e.snapshot(), before), "store after a failed Apply(%s): nothing of the batch may be written", what)
}

var batchCases = []tcase{
	{"Empty", func(e *env) {
		seqs, err := e.ss.Apply(e.ctx, &persistence.Batch{})
		e.ok(err, "Apply of an empty batch")
		if len(seqs) != 0 {
			e.fatalf("Apply of an empty batch returned %d seqs", len(seqs))
		}
	}},
	{"CreateAndFillInOneBatch", func(e *env) {
		var b persistence.Batch
		st := state(2)
		b.Create("s", persistence.SessionBase{CreatedAt: caseEpoch, ProtocolVersion: 4}).
			PacketAppend("s", persistence.ClassQoS0, pkt(0)).
			PacketAppend("s", persistence.ClassQoS12, pkt(1)).
			PacketAppend("s", persistence.ClassUnAck, pkt(2)).
			PacketAppend("s", persistence.ClassIncoming, pkt(3)).
			SubscriptionStore("s", sub("a/#", 1)).
			StateStore("s", st).
			ExpiryStore("s", persistence.SessionExpiry{ExpireAt: caseEpoch})
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		if len(seqs) != 4 {
			e.fatalf("Apply returned %d seqs, want 4", len(seqs))
		}
		for i, c := range persistence.PacketClasses {
			p := pkt(i)
			p.Seq = seqs[i]
			e.queue("s", c, []*persistence.PersistedPacket{p})
		}
		e.subsSet("s", sub("a/#", 1))
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, st), "StateGet")
		e.expired(caseEpoch, "s")
	}},
	{"SeqsInAppendOrder", func(e *env) {
		e.create("a", "b")
		var b persistence.Batch
		b.PacketAppend("a", cq, pkt(0)).PacketAppend("b", cq, pkt(1)).PacketAppend("a", cq, pkt(2)).StateDelete("a").PacketAppend("a", cq, pkt(3))
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		if len(seqs) != 4 {
			e.fatalf("Apply returned %d seqs, want 4", len(seqs))
		}
		want := []*persistence.PersistedPacket{pkt(0), pkt(2), pkt(3)}
		for i, s := range []uint64{seqs[0], seqs[2], seqs[3]} {
			want[i].Seq = s
		}
		e.queue("a", cq, want)
		p1 := pkt(1)
		p1.Seq = seqs[1]
		e.queue("b", cq, []*persistence.PersistedPacket{p1})
	}},
	{"MoveBetweenClasses", func(e *env) {
		e.create("s")
		q := e.appendN("s", persistence.ClassQoS12, 2)
		var b persistence.Batch
		b.PacketAppend("s", persistence.ClassUnAck, q[0]).PacketDelete("s", persistence.ClassQoS12, q[0].Seq)
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		m := q[0].Clone()
		m.Seq = seqs[0]
		e.queue("s", persistence.ClassQoS12, q[1:])
		e.queue("s", persistence.ClassUnAck, []*persistence.PersistedPacket{m})
	}},
	{"MovePageInFlight", func(e *env) {
		// A broker's move of a page in flight: the acknowledged in-flight packets'
		// deletes (one of them already gone), the page's deletes from the queue,
		// then its appends to the in-flight class; all or nothing.
		e.create("s")
		q := e.appendN("s", persistence.ClassQoS12, 4)
		acked := e.appendN("s", persistence.ClassUnAck, 2)
		var b persistence.Batch
		b.PacketDelete("s", persistence.ClassUnAck, acked[0].Seq).PacketDelete("s", persistence.ClassUnAck, 1<<62)
		for _, p := range q[:3] {
			b.PacketDelete("s", persistence.ClassQoS12, p.Seq)
		}
		for _, p := range q[:3] {
			b.PacketAppend("s", persistence.ClassUnAck, p)
		}
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(move of a page in flight)")
		if len(seqs) != 3 || !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) || seqs[0] <= acked[1].Seq {
			e.fatalf("Apply(move of a page in flight) returned seqs %v; want 3 ascending, after %d", seqs, acked[1].Seq)
		}
		want := []*persistence.PersistedPacket{acked[1]}
		for i, p := range q[:3] {
			m := p.Clone()
			m.Seq = seqs[i]
			want = append(want, m)
		}
		e.queue("s", persistence.ClassQoS12, q[3:])
		e.queue("s", persistence.ClassUnAck, want)
		var m persistence.Batch
		m.PacketDelete("missing", persistence.ClassQoS12, q[3].Seq).PacketAppend("missing", persistence.ClassUnAck, pkt(7))
		e.failsAtomically(&m, persistence.ErrNotFound, "move of a page in flight of a missing session")
	}},
	{"UpdateAndDeleteInBatch", func(e *env) {
		e.create("s")
		ps := e.appendN("s", persistence.ClassUnAck, 3)
		u := pkt(9)
		u.Seq = ps[1].Seq
		var b persistence.Batch
		b.PacketUpdate("s", persistence.ClassUnAck, u).PacketDelete("s", persistence.ClassUnAck, ps[0].Seq).PacketsDelete("s", persistence.ClassQoS0)
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		e.queue("s", persistence.ClassUnAck, []*persistence.PersistedPacket{u, ps[2]})
	}},
	{"FailingUpdateChangesNothing", func(e *env) {
		f := e.prepare()
		var b persistence.Batch
		missing := pkt(1)
		missing.Seq = f.seqs[cq][1] + 1_000_000
		b.PacketAppend("s", cq, pkt(5)).PacketDelete("s", cq, f.seqs[cq][0]).SubscriptionsDeleteAll("s").
			StateDelete("s").Create("n", e.base()).PacketUpdate("s", cq, missing)
		e.failsAtomically(&b, persistence.ErrNotFound, "…, PacketUpdate of a missing seq")
	}},
	{"MissingSessionChangesNothing", func(e *env) {
		e.prepare()
		var b persistence.Batch
		b.PacketAppend("s", cq, pkt(5)).ExpiryDelete("s").PacketAppend("nobody", cq, pkt(6))
		e.failsAtomically(&b, persistence.ErrNotFound, "…, PacketAppend to a missing session")
	}},
	{"DuplicateCreateChangesNothing", func(e *env) {
		e.prepare()
		var b persistence.Batch
		b.Create("n", e.base()).PacketAppend("n", cq, pkt(1)).Create("s", e.base())
		e.failsAtomically(&b, persistence.ErrAlreadyExists, "…, Create of an existing session")
	}},
	{"InvalidOpChangesNothing", func(e *env) {
		e.prepare()
		bad := pkt(1)
		bad.QoS = 3
		var b persistence.Batch
		b.PacketAppend("s", cq, pkt(5)).PacketAppend("s", cq, bad)
		e.failsAtomically(&b, persistence.ErrInvalidArgument, "…, PacketAppend of a QoS 3 packet")
		b.Reset()
		b.SubscriptionsDeleteAll("s").SubscriptionStore("s", persistence.Subscription{Filter: ""})
		e.failsAtomically(&b, persistence.ErrInvalidArgument, "…, SubscriptionStore with an empty filter")
	}},
	{"DeleteCascadesInBatch", func(e *env) {
		e.prepare()
		var b persistence.Batch
		b.Delete("s")
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(Delete)")
		e.checkGone("s")
		e.count(2)
	}},
	{"DeleteThenCreateInBatch", func(e *env) {
		e.prepare()
		var b persistence.Batch
		b.Delete("s").Create("s", persistence.SessionBase{CreatedAt: caseEpoch.Add(1), ProtocolVersion: 3}).PacketAppend("s", cq, pkt(1))
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(Delete, Create, PacketAppend)")
		p := pkt(1)
		p.Seq = seqs[0]
		e.queue("s", cq, []*persistence.PersistedPacket{p})
		e.subsSet("s")
		_, err = e.ss.StateGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "StateGet of the re-created session")
		ls := e.loadAll()["s"]
		if ls == nil || !ls.Base.CreatedAt.Equal(caseEpoch.Add(1)) || ls.Base.ProtocolVersion != 3 {
			e.fatalf("re-created session's base is %+v", ls)
		}
	}},
	{"DeleteCreateThenOldSeqsInSameBatch", func(e *env) {
		// After Delete and Create of the same id in a batch, the old incarnation's
		// sequence numbers name nothing: an update of one fails the whole batch, a
		// delete of one is a no-op.
		e.create("s")
		old := e.appendN("s", cq, 3)
		u := pkt(7)
		u.Seq = old[1].Seq
		var b persistence.Batch
		b.Delete("s").Create("s", e.base()).PacketAppend("s", cq, pkt(8)).PacketUpdate("s", cq, u)
		e.failsAtomically(&b, persistence.ErrNotFound, "Delete, Create, PacketAppend, PacketUpdate of the old incarnation's seq")
		e.queue("s", cq, old)
		b.Reset()
		b.Delete("s").Create("s", e.base()).PacketDelete("s", cq, old[0].Seq).PacketAppend("s", cq, pkt(9)).PacketDelete("s", cq, old[2].Seq)
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(Delete, Create, PacketDelete of an old seq, PacketAppend, PacketDelete of an old seq)")
		if len(seqs) != 1 {
			e.fatalf("Apply returned %d seqs, want 1", len(seqs))
		}
		if seqs[0] <= old[2].Seq {
			e.fatalf("the re-created session's first append got seq %d, not above the old incarnation's %d: seqs are never reused", seqs[0], old[2].Seq)
		}
		p := pkt(9)
		p.Seq = seqs[0]
		e.queue("s", cq, []*persistence.PersistedPacket{p})
		e.sessionCount(1)
	}},
	{"DeleteCreateThenOldSeqsInLaterBatch", func(e *env) {
		e.create("s")
		old := e.appendN("s", cq, 3)
		oldUnAck := e.appendN("s", persistence.ClassUnAck, 2)
		var b persistence.Batch
		b.Delete("s").Create("s", e.base())
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply(Delete, Create)")
		fresh := e.appendN("s", cq, 2)
		if fresh[0].Seq <= old[2].Seq {
			e.fatalf("the re-created session's first append got seq %d, not above the old incarnation's %d", fresh[0].Seq, old[2].Seq)
		}
		for _, p := range append(slices.Clone(old), oldUnAck...) {
			_, err := e.ss.PacketGet(e.ctx, "s", cq, p.Seq)
			e.is(err, persistence.ErrNotFound, "PacketGet(seq %d) of the old incarnation", p.Seq)
			u := pkt(5)
			u.Seq = p.Seq
			b.Reset()
			b.PacketAppend("s", cq, pkt(6)).PacketUpdate("s", persistence.ClassUnAck, u)
			e.failsAtomically(&b, persistence.ErrNotFound, "PacketAppend, PacketUpdate of the old incarnation's seq")
		}
		b.Reset()
		for _, p := range old {
			b.PacketDelete("s", cq, p.Seq)
		}
		for _, p := range oldUnAck {
			b.PacketDelete("s", persistence.ClassUnAck, p.Seq)
		}
		_, err = e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of PacketDeletes of the old incarnation's seqs")
		e.queue("s", cq, fresh)
		e.queue("s", persistence.ClassUnAck, nil)
		e.sessionCount(1)
	}},
	{"SubscriptionsStateExpiryOps", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("x", 1), sub("y", 1)), "SubscriptionsStore")
		var b persistence.Batch
		b.SubscriptionDelete("s", "x").SubscriptionStore("s", sub("z", 2)).SubscriptionStore("s", sub("y", 3)).
			StateStore("s", state(1)).StateDelete("s").StateStore("s", state(2)).
			ExpiryStore("s", persistence.SessionExpiry{WillAt: caseEpoch}).ExpiryDelete("s")
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		e.subsSet("s", sub("z", 2), sub("y", 3))
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, state(2)), "StateGet after the batch")
		_, err = e.ss.ExpiryGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "ExpiryGet after ExpiryStore then ExpiryDelete in one batch")
	}},
	{"BatchKeepsCopies", func(e *env) {
		e.create("s")
		p := pkt(1)
		st := state(1)
		var b persistence.Batch
		b.PacketAppend("s", cq, p).StateStore("s", st)
		scribble(p.Data)
		scribbleState(st)
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		w := pkt(1)
		w.Seq = seqs[0]
		e.queue("s", cq, []*persistence.PersistedPacket{w})
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, state(1)), "StateGet")
	}},
	{"ReuseAfterReset", func(e *env) {
		e.create("s")
		var b persistence.Batch
		b.PacketAppend("s", cq, pkt(0))
		s1, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		b.Reset()
		b.PacketAppend("s", cq, pkt(1))
		s2, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply after Reset")
		if len(s1) != 1 || len(s2) != 1 || s2[0] <= s1[0] {
			e.fatalf("seqs %v then %v, want one each, increasing", s1, s2)
		}
		p0, p1 := pkt(0), pkt(1)
		p0.Seq, p1.Seq = s1[0], s2[0]
		e.queue("s", cq, []*persistence.PersistedPacket{p0, p1})
	}},
	{"LargeBatch", func(e *env) {
		e.create("s")
		var b persistence.Batch
		for i := range 2000 {
			b.PacketAppend("s", persistence.PacketClasses[i%4], pkt(i))
		}
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of 2000 appends")
		if len(seqs) != 2000 {
			e.fatalf("Apply returned %d seqs, want 2000", len(seqs))
		}
		for ci, c := range persistence.PacketClasses {
			var want []*persistence.PersistedPacket
			for i := ci; i < 2000; i += 4 {
				p := pkt(i)
				p.Seq = seqs[i]
				want = append(want, p)
			}
			e.queue("s", c, want)
		}
	}},
}

// sessionCount checks Sessions.Count and that LoadForEach agrees.
func (e *env) sessionCount(want uint64) {
	n, err := e.ss.Count(e.ctx)
	e.ok(err, "Count")
	if n != want {
		e.fatalf("Count = %d, want %d", n, want)
	}
	if got := len(e.loadAll()); got != int(want) {
		e.fatalf("LoadForEach visits %d sessions, want %d", got, want)
	}
}
