package conformance

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Acks: acknowledgements (PacketDelete, and deletes from PacketsForEach) anywhere in
// a queue, of packets already acknowledged, twice, sequentially and concurrently.
// Deleting a missing packet is a no-op; updating one is ErrNotFound; counts and
// order are checked after every step.

func runAcks(t *testing.T, h Harness) {
	for _, c := range []persistence.PacketClass{persistence.ClassQoS12, persistence.ClassUnAck} {
		t.Run(classAreaName(c), func(t *testing.T) {
			var cs []tcase
			for _, a := range ackCases {
				cs = append(cs, tcase{a.name, func(e *env) { a.run(e, c) }})
			}
			runCases(t, h, cs)
		})
	}
}

type ackCase struct {
	name string
	run  func(e *env, c persistence.PacketClass)
}

// without returns q without the packet of seq.
func without(q []*persistence.PersistedPacket, seq uint64) []*persistence.PersistedPacket {
	return slices.DeleteFunc(slices.Clone(q), func(p *persistence.PersistedPacket) bool { return p.Seq == seq })
}

var ackCases = []ackCase{
	{"HeadMiddleTailTwice", func(e *env, c persistence.PacketClass) {
		e.create("s")
		q := e.appendN("s", c, 9)
		for _, pos := range []struct {
			name string
			at   func([]*persistence.PersistedPacket) int
		}{
			{"head", func([]*persistence.PersistedPacket) int { return 0 }},
			{"middle", func(q []*persistence.PersistedPacket) int { return len(q) / 2 }},
			{"tail", func(q []*persistence.PersistedPacket) int { return len(q) - 1 }},
		} {
			seq := q[pos.at(q)].Seq
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, seq), "PacketDelete of the %s (seq %d)", pos.name, seq)
			q = without(q, seq)
			e.queue("s", c, q)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, seq), "PacketDelete of the %s (seq %d) again: deleting a missing packet is a no-op", pos.name, seq)
			e.queue("s", c, q)
		}
		// The queue goes on: an append lands at the tail with a greater seq.
		next := e.appendN("s", c, 1)
		e.queue("s", c, append(q, next...))
	}},
	{"UpdateOfAckedIsErrNotFound", func(e *env, c persistence.PacketClass) {
		e.create("s")
		q := e.appendN("s", c, 5)
		for _, i := range []int{0, 2, 4} {
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, q[i].Seq), "PacketDelete(seq %d)", q[i].Seq)
		}
		left := []*persistence.PersistedPacket{q[1], q[3]}
		for _, i := range []int{0, 2, 4} {
			u := pkt(50 + i)
			u.Seq = q[i].Seq
			e.is(e.ss.PacketUpdate(e.ctx, "s", c, u), persistence.ErrNotFound, "PacketUpdate of the acknowledged packet #%d (seq %d)", i, u.Seq)
			_, err := e.ss.PacketGet(e.ctx, "s", c, u.Seq)
			e.is(err, persistence.ErrNotFound, "PacketGet of the acknowledged packet #%d after an update was refused", i)
			e.queue("s", c, left)
		}
	}},
	{"DoubleAckInOneBatch", func(e *env, c persistence.PacketClass) {
		e.create("s")
		q := e.appendN("s", c, 6)
		var b persistence.Batch
		b.PacketDelete("s", c, q[1].Seq).PacketDelete("s", c, q[1].Seq).PacketDelete("s", c, q[5].Seq).
			PacketDelete("s", c, q[5].Seq).PacketDelete("s", c, q[0].Seq)
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of a batch acknowledging packets twice")
		e.queue("s", c, []*persistence.PersistedPacket{q[2], q[3], q[4]})
		b.Reset()
		b.PacketDelete("s", c, q[1].Seq).PacketDelete("s", c, q[3].Seq)
		_, err = e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply of a batch acknowledging an already acknowledged packet and a live one")
		e.queue("s", c, []*persistence.PersistedPacket{q[2], q[4]})
	}},
	{"DoubleAckConcurrent", func(e *env, c persistence.PacketClass) {
		// Several goroutines acknowledge the same packets (every even one), each in
		// its own order: every call succeeds, the odd ones stay, and the count is
		// exact (a count decremented once per call instead of once per packet
		// drifts).
		const n, workers = 120, 6
		e.create("s")
		q := e.appendN("s", c, n)
		e.parallel(workers, func(w int) error {
			for k := range n / 2 {
				i := 2 * ((k + 7*w) % (n / 2)) // a rotation: every worker acks all of them
				if err := e.ss.PacketDelete(e.ctx, "s", c, q[i].Seq); err != nil {
					return fmt.Errorf("PacketDelete(seq %d) by worker %d: %w", q[i].Seq, w, err)
				}
			}
			return nil
		})
		var odd []*persistence.PersistedPacket
		for i := 1; i < n; i += 2 {
			odd = append(odd, q[i])
		}
		e.queue("s", c, odd)
		e.queue("s", c, append(odd, e.appendN("s", c, 1)...))
	}},
	{"AckInCallbackThenDeleteFromIteration", func(e *env, c persistence.PacketClass) {
		// The callback acknowledges the packet itself (PacketDelete) and also
		// returns del=true: one packet, deleted twice, counted once.
		e.create("s")
		q := e.appendN("s", c, 7)
		err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
			if p.Seq%2 == q[0].Seq%2 {
				return true, e.ss.PacketDelete(e.ctx, "s", c, p.Seq)
			}
			return false, nil
		})
		e.ok(err, "PacketsForEach acknowledging from the callback and returning del=true")
		var left []*persistence.PersistedPacket
		for _, p := range q {
			if p.Seq%2 != q[0].Seq%2 {
				left = append(left, p)
			}
		}
		e.queue("s", c, left)
	}},
	{"ConcurrentIterationsAckHalf", func(e *env, c persistence.PacketClass) {
		// Iterations acknowledge concurrently (each packet with an even index,
		// several times over): the odd ones stay and the count is exact.
		const n = 300
		e.create("s")
		q := e.appendN("s", c, n)
		even := map[uint64]bool{}
		for i := 0; i < n; i += 2 {
			even[q[i].Seq] = true
		}
		e.parallel(4, func(int) error {
			return e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				return even[p.Seq], nil
			})
		})
		var odd []*persistence.PersistedPacket
		for i := 1; i < n; i += 2 {
			odd = append(odd, q[i])
		}
		e.queue("s", c, odd)
	}},
	{"AckAllThenAppend", func(e *env, c persistence.PacketClass) {
		e.create("s")
		q := e.appendN("s", c, 4)
		for i := len(q) - 1; i >= 0; i-- { // tail first
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, q[i].Seq), "PacketDelete(seq %d)", q[i].Seq)
			e.queue("s", c, q[:i])
		}
		for _, p := range q {
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, p.Seq), "PacketDelete(seq %d) of an empty queue", p.Seq)
		}
		e.queue("s", c, nil)
		next := e.appendN("s", c, 2)
		if next[0].Seq <= q[len(q)-1].Seq {
			e.fatalf("append after acknowledging everything got seq %d, not above the acknowledged %d: seqs are never reused", next[0].Seq, q[len(q)-1].Seq)
		}
		e.queue("s", c, next)
	}},
	{"AckMissingSeqsAroundLive", func(e *env, c persistence.PacketClass) {
		// Seqs that were never assigned (0, between others, far above) and seqs
		// of other queues: deleting them changes nothing.
		e.create("s", "t")
		q := e.appendN("s", c, 3)
		other := e.appendN("t", c, 2)
		otherClass := persistence.ClassQoS0
		oq := e.appendN("s", otherClass, 2)
		for _, seq := range []uint64{0, q[2].Seq + 1, q[2].Seq + 1000, 1 << 63, other[0].Seq, other[1].Seq, oq[0].Seq, oq[1].Seq} {
			if slices.ContainsFunc(q, func(p *persistence.PersistedPacket) bool { return p.Seq == seq }) {
				continue // the same number may be live in this queue too
			}
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, seq), "PacketDelete(seq %d) of a packet this queue does not hold", seq)
			e.queue("s", c, q)
		}
		e.queue("t", c, other)
		e.queue("s", otherClass, oq)
	}},
}
