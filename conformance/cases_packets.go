package conformance

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Packets: every class gets the same cases (Packets/QoS0/..., Packets/QoS12/...,
// Packets/Inflight/..., Packets/Incoming/...), plus a few that only make sense for
// one class and the bulk calls that span classes (Packets/Multi/...).

// classAreaName names a class in test paths: the un-acknowledged class is what MQTT
// calls in-flight.
func classAreaName(c persistence.PacketClass) string {
	if c == persistence.ClassUnAck {
		return "Inflight"
	}
	return c.String()
}

func runPackets(t *testing.T, h Harness) {
	for _, c := range persistence.PacketClasses {
		t.Run(classAreaName(c), func(t *testing.T) {
			cs := slices.Clone(classCases(c))
			switch c {
			case persistence.ClassUnAck:
				cs = append(cs, inflightCases...)
			case persistence.ClassIncoming:
				cs = append(cs, incomingCases...)
			}
			runCases(t, h, cs)
		})
	}
	t.Run("Multi", func(t *testing.T) { runCases(t, h, multiClassCases) })
}

// otherClass returns a class other than c.
func otherClass(c persistence.PacketClass) persistence.PacketClass {
	return persistence.PacketClasses[int(c)%len(persistence.PacketClasses)]
}

func classCases(c persistence.PacketClass) []tcase {
	return []tcase{
		{"AppendAssignsIncreasingSeqs", func(e *env) {
			e.create("s")
			e.appendN("s", c, 20) // appendN checks strict increase
		}},
		{"AppendIgnoresAndKeepsCallerSeq", func(e *env) {
			e.create("s")
			p := pkt(1)
			p.Seq = math.MaxUint64
			seq, err := e.ss.PacketAppend(e.ctx, "s", c, p)
			e.ok(err, "PacketAppend")
			if p.Seq != math.MaxUint64 {
				e.fatalf("PacketAppend changed the caller's Seq to %d", p.Seq)
			}
			if seq == math.MaxUint64 {
				e.fatalf("PacketAppend used the caller's Seq instead of assigning one")
			}
			got, err := e.ss.PacketGet(e.ctx, "s", c, seq)
			e.ok(err, "PacketGet")
			if got.Seq != seq {
				e.fatalf("PacketGet returned Seq %d, want the assigned %d", got.Seq, seq)
			}
		}},
		{"FIFO", func(e *env) {
			e.create("s")
			e.queue("s", c, e.appendN("s", c, 50))
		}},
		{"GetRoundTripsEveryField", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 5)
			for _, w := range ps {
				got, err := e.ss.PacketGet(e.ctx, "s", c, w.Seq)
				e.ok(err, "PacketGet(%d)", w.Seq)
				e.eq(diffPacket(got, w, true), "PacketGet(%d)", w.Seq)
			}
		}},
		{"GetMissingIsErrNotFound", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 2)
			for _, seq := range []uint64{0, ps[1].Seq + 1000, math.MaxUint64} {
				got, err := e.ss.PacketGet(e.ctx, "s", c, seq)
				e.is(err, persistence.ErrNotFound, "PacketGet(%d) of a missing packet", seq)
				if got != nil {
					e.fatalf("PacketGet of a missing packet returned a packet along with its error")
				}
			}
		}},
		{"SeqsAreScopedToTheirQueue", func(e *env) {
			e.create("s", "t")
			ps := e.appendN("s", c, 2)
			_, err := e.ss.PacketGet(e.ctx, "s", otherClass(c), ps[0].Seq)
			e.is(err, persistence.ErrNotFound, "PacketGet of a seq of class %s in class %s", c, otherClass(c))
			_, err = e.ss.PacketGet(e.ctx, "t", c, ps[0].Seq)
			e.is(err, persistence.ErrNotFound, "PacketGet of another session's seq")
			e.ok(e.ss.PacketDelete(e.ctx, "s", otherClass(c), ps[0].Seq), "PacketDelete in another class")
			e.ok(e.ss.PacketDelete(e.ctx, "t", c, ps[0].Seq), "PacketDelete in another session")
			e.queue("s", c, ps)
		}},
		{"UpdateKeepsPosition", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 5)
			u := pkt(99)
			u.Seq = ps[2].Seq
			e.ok(e.ss.PacketUpdate(e.ctx, "s", c, u), "PacketUpdate")
			ps[2] = u
			e.queue("s", c, ps)
		}},
		{"UpdateHeadAndTail", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 3)
			for _, i := range []int{0, 2} {
				u := pkt(50 + i)
				u.Seq = ps[i].Seq
				e.ok(e.ss.PacketUpdate(e.ctx, "s", c, u), "PacketUpdate(#%d)", i)
				ps[i] = u
			}
			e.queue("s", c, ps)
			// An append after updates goes to the tail.
			ps = append(ps, e.appendN("s", c, 1)...)
			e.queue("s", c, ps)
		}},
		{"UpdateMissingIsErrNotFound", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 2)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[0].Seq), "PacketDelete")
			for _, seq := range []uint64{ps[0].Seq, ps[1].Seq + 77, 0} {
				u := pkt(9)
				u.Seq = seq
				e.is(e.ss.PacketUpdate(e.ctx, "s", c, u), persistence.ErrNotFound, "PacketUpdate of missing seq %d", seq)
			}
			e.queue("s", c, ps[1:])
		}},
		{"DeleteOne", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 5)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[1].Seq), "PacketDelete")
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[4].Seq), "PacketDelete")
			e.queue("s", c, []*persistence.PersistedPacket{ps[0], ps[2], ps[3]})
			_, err := e.ss.PacketGet(e.ctx, "s", c, ps[1].Seq)
			e.is(err, persistence.ErrNotFound, "PacketGet of a deleted packet")
		}},
		{"DeleteMissingIsNoop", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 2)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[0].Seq), "PacketDelete")
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[0].Seq), "PacketDelete twice")
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, 0), "PacketDelete(0)")
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, math.MaxUint64), "PacketDelete(max)")
			e.queue("s", c, ps[1:])
		}},
		{"CountEmptyAndAfterWrites", func(e *env) {
			e.create("s")
			e.queue("s", c, nil)
			ps := e.appendN("s", c, 7)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[3].Seq), "PacketDelete")
			e.queue("s", c, slices.Delete(slices.Clone(ps), 3, 4))
		}},
		{"SeqNeverReusedAfterDelete", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 3)
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[2].Seq), "PacketDelete(tail)")
			e.ok(e.ss.PacketsDelete(e.ctx, "s", c), "PacketsDelete")
			seq, err := e.ss.PacketAppend(e.ctx, "s", c, pkt(5))
			e.ok(err, "PacketAppend")
			if seq <= ps[2].Seq {
				e.fatalf("PacketAppend after deleting the tail assigned %d, not above %d: seqs are never reused", seq, ps[2].Seq)
			}
		}},
		{"ClassesAreIndependent", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 4)
			for _, o := range persistence.PacketClasses {
				if o != c {
					e.queue("s", o, nil)
				}
			}
			e.ok(e.ss.PacketsDelete(e.ctx, "s", otherClass(c)), "PacketsDelete(other class)")
			e.queue("s", c, ps)
		}},
		{"ForEachEmptyQueue", func(e *env) {
			e.create("s")
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				return false, fmt.Errorf("callback called for seq %d of an empty queue", p.Seq)
			})
			e.ok(err, "PacketsForEach of an empty queue")
		}},
		{"ForEachDeleteAcksAll", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 10)
			i := 0
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				if i >= len(ps) || p.Seq != ps[i].Seq {
					return false, fmt.Errorf("visit #%d got seq %d: %w", i, p.Seq, errCase)
				}
				i++
				return true, nil
			})
			e.ok(err, "PacketsForEach deleting everything")
			e.queue("s", c, nil)
		}},
		{"ForEachDeleteSome", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 10)
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				return p.PacketID%2 == 0, nil
			})
			e.ok(err, "PacketsForEach")
			e.queue("s", c, slices.DeleteFunc(ps, func(p *persistence.PersistedPacket) bool { return p.PacketID%2 == 0 }))
		}},
		{"ForEachStopIteration", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 6)
			n := 0
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(*persistence.PersistedPacket) (bool, error) {
				n++
				if n == 3 {
					return true, persistence.ErrStopIteration
				}
				return false, nil
			})
			e.ok(err, "PacketsForEach stopped with ErrStopIteration")
			if n != 3 {
				e.fatalf("callback called %d times, want 3", n)
			}
			e.queue("s", c, slices.Delete(slices.Clone(ps), 2, 3))
		}},
		{"ForEachErrorKeepsEarlierDeletes", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 6)
			n := 0
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(*persistence.PersistedPacket) (bool, error) {
				n++
				if n == 4 {
					return true, errCase // the deletion asked for with the error is applied too
				}
				return n%2 == 1, nil
			})
			e.is(err, errCase, "PacketsForEach whose callback fails")
			if n != 4 {
				e.fatalf("callback called %d times, want 4 (an error stops the iteration)", n)
			}
			e.queue("s", c, []*persistence.PersistedPacket{ps[1], ps[4], ps[5]})
		}},
		{"ForEachCallbackMayCallAnyMethod", func(e *env) {
			e.create("s", "t")
			ps := e.appendN("s", c, 4)
			var moved []*persistence.PersistedPacket
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				// Move each packet to another session and class, read and count from
				// inside the callback: no lock may be held while it runs.
				if _, err := e.ss.PacketGet(e.ctx, "s", c, p.Seq); err != nil {
					return false, err
				}
				seq, err := e.ss.PacketAppend(e.ctx, "t", otherClass(c), p)
				if err != nil {
					return false, err
				}
				m := p.Clone()
				m.Seq = seq
				moved = append(moved, m)
				if _, err := e.ss.PacketCount(e.ctx, "s", c); err != nil {
					return false, err
				}
				return false, e.ss.PacketDelete(e.ctx, "s", c, p.Seq)
			})
			e.ok(err, "PacketsForEach whose callback calls the store")
			e.queue("s", c, nil)
			if len(moved) != len(ps) {
				e.fatalf("moved %d packets, want %d", len(moved), len(ps))
			}
			e.queue("t", otherClass(c), moved)
		}},
		{"ForEachCallbackGetsACopy", func(e *env) {
			e.create("s")
			ps := e.appendN("s", c, 2)
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
				scribble(p.Data)
				p.PacketID++
				return false, nil
			})
			e.ok(err, "PacketsForEach")
			e.queue("s", c, ps)
		}},
		{"PacketIDsWrapIdentityIsSeq", func(e *env) {
			// Packet ids wrap at 65535: two packets with the same id are distinct.
			e.create("s")
			var ps []*persistence.PersistedPacket
			for i, id := range []uint16{65535, 1, 65535, 1} {
				p := pkt(i)
				p.PacketID = id
				seq, err := e.ss.PacketAppend(e.ctx, "s", c, p)
				e.ok(err, "PacketAppend")
				p.Seq = seq
				ps = append(ps, p)
			}
			e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[2].Seq), "PacketDelete")
			e.queue("s", c, []*persistence.PersistedPacket{ps[0], ps[1], ps[3]})
		}},
		{"LongQueueAcrossPages", func(e *env) {
			// 10k packets (1500 in short mode): more than any page or batch size of a
			// driver.
			e.create("s")
			ps := e.appendN("s", c, 3)
			pp := &persistence.PersistedPackets{}
			var bulk []*persistence.PersistedPacket
			n := 10_000
			if testing.Short() {
				n = 1500
			}
			for i := range n {
				bulk = append(bulk, pkt(3+i))
			}
			switch c {
			case persistence.ClassQoS0:
				pp.QoS0 = bulk
			case persistence.ClassQoS12:
				pp.QoS12 = bulk
			case persistence.ClassUnAck:
				pp.UnAck = bulk
			case persistence.ClassIncoming:
				pp.Incoming = bulk
			}
			e.ok(e.ss.PacketsStore(e.ctx, "s", pp), "PacketsStore of %d packets", n)
			got := e.read("s", c)
			if len(got) != len(ps)+len(bulk) {
				e.fatalf("queue holds %d packets, want %d", len(got), len(ps)+len(bulk))
			}
			for i, p := range got {
				if i > 0 && p.Seq <= got[i-1].Seq {
					e.fatalf("packet #%d: seq %d after %d: FIFO order is seq order", i, p.Seq, got[i-1].Seq)
				}
				w := pkt(i)
				if i < len(ps) {
					w = ps[i]
				}
				e.eq(diffPacket(p, w, i < len(ps)), "packet #%d in FIFO order", i)
			}
			// Ack every third packet during an iteration, then check order again.
			first := got[0].Seq
			ack := func(p *persistence.PersistedPacket) bool { return (p.Seq-first)%3 == 0 }
			err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) { return ack(p), nil })
			e.ok(err, "PacketsForEach")
			e.queue("s", c, slices.DeleteFunc(got, ack))
		}},
		{"EmptyAndNilData", func(e *env) {
			e.create("s")
			var ps []*persistence.PersistedPacket
			for _, d := range [][]byte{nil, {}, {0}} {
				p := pktData(d)
				seq, err := e.ss.PacketAppend(e.ctx, "s", c, p)
				e.ok(err, "PacketAppend of %d bytes", len(d))
				p.Seq = seq
				ps = append(ps, p)
			}
			e.queue("s", c, ps)
		}},
		{"LargePayload", func(e *env) {
			e.create("s")
			data := bigData(e.h.maxPayload())
			seq, err := e.ss.PacketAppend(e.ctx, "s", c, pktData(data))
			e.ok(err, "PacketAppend of %d bytes", len(data))
			got, err := e.ss.PacketGet(e.ctx, "s", c, seq)
			e.ok(err, "PacketGet")
			e.eq(sameBytes(got.Data, data), "PacketGet of a %d-byte packet", len(data))
		}},
		{"StoredPacketIsACopy", func(e *env) {
			e.create("s")
			p := pkt(1)
			want := p.Clone()
			seq, err := e.ss.PacketAppend(e.ctx, "s", c, p)
			e.ok(err, "PacketAppend")
			want.Seq = seq
			scribble(p.Data)
			got, err := e.ss.PacketGet(e.ctx, "s", c, seq)
			e.ok(err, "PacketGet")
			e.eq(diffPacket(got, want, true), "PacketGet after mutating the appended slice")
			scribble(got.Data)
			again, err := e.ss.PacketGet(e.ctx, "s", c, seq)
			e.ok(err, "PacketGet")
			e.eq(diffPacket(again, want, true), "PacketGet after mutating a returned slice")
			u := pkt(2)
			u.Seq = seq
			wantU := u.Clone()
			e.ok(e.ss.PacketUpdate(e.ctx, "s", c, u), "PacketUpdate")
			scribble(u.Data)
			e.queue("s", c, []*persistence.PersistedPacket{wantU})
		}},
	}
}

// inflightCases apply to the un-acknowledged (in-flight) class only.
var inflightCases = []tcase{
	{"PubrelKeepsPosition", func(e *env) {
		// [MQTT-4.3.3] a PUBREL replaces its PUBLISH and keeps its place, so that
		// retransmission after a reconnect happens in the original order [MQTT-4.6.0-1].
		e.create("s")
		c := persistence.ClassUnAck
		ps := e.appendN("s", c, 4)
		rel := &persistence.PersistedPacket{Seq: ps[1].Seq, PacketID: ps[1].PacketID, QoS: 2, ProtocolVersion: 5,
			Data: []byte{0x62, 0x02, byte(ps[1].PacketID >> 8), byte(ps[1].PacketID)}}
		e.ok(e.ss.PacketUpdate(e.ctx, "s", c, rel), "PacketUpdate(PUBREL)")
		ps[1] = rel
		e.queue("s", c, ps)
		// The PUBCOMP deletes it; the rest keeps its order.
		e.ok(e.ss.PacketDelete(e.ctx, "s", c, rel.Seq), "PacketDelete(PUBCOMP)")
		e.queue("s", c, []*persistence.PersistedPacket{ps[0], ps[2], ps[3]})
	}},
	{"UpdateClearsExpiry", func(e *env) {
		// The update replaces every field: an expiry can be removed as well as set.
		e.create("s")
		c := persistence.ClassUnAck
		ps := e.appendN("s", c, 1)
		u := ps[0].Clone()
		u.ExpireAt = persistence.PersistedPacket{}.ExpireAt
		e.ok(e.ss.PacketUpdate(e.ctx, "s", c, u), "PacketUpdate")
		e.queue("s", c, []*persistence.PersistedPacket{u})
	}},
	{"MoveFromQueueWithBatch", func(e *env) {
		e.create("s")
		q := e.appendN("s", persistence.ClassQoS12, 3)
		var b persistence.Batch
		b.PacketDelete("s", persistence.ClassQoS12, q[0].Seq).PacketAppend("s", persistence.ClassUnAck, q[0])
		seqs, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		if len(seqs) != 1 {
			e.fatalf("Apply returned %d seqs, want 1", len(seqs))
		}
		m := q[0].Clone()
		m.Seq = seqs[0]
		e.queue("s", persistence.ClassQoS12, q[1:])
		e.queue("s", persistence.ClassUnAck, []*persistence.PersistedPacket{m})
	}},
}

// incomingCases apply to the incoming QoS 2 class only.
var incomingCases = []tcase{
	{"ReleaseRemovesOnlyThatPacket", func(e *env) {
		// [MQTT-4.3.3-10..12] an inbound QoS 2 PUBLISH stays until the PUBREL for its
		// packet id; the id is then free again.
		e.create("s")
		c := persistence.ClassIncoming
		ps := e.appendN("s", c, 3)
		e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[1].Seq), "PacketDelete (PUBREL received)")
		e.queue("s", c, []*persistence.PersistedPacket{ps[0], ps[2]})
		again := ps[1].Clone()
		seq, err := e.ss.PacketAppend(e.ctx, "s", c, again)
		e.ok(err, "PacketAppend of the same packet id again")
		again.Seq = seq
		e.queue("s", c, []*persistence.PersistedPacket{ps[0], ps[2], again})
	}},
	{"FindByPacketIDWithForEach", func(e *env) {
		e.create("s")
		c := persistence.ClassIncoming
		ps := e.appendN("s", c, 5)
		target := ps[3].PacketID
		var found *persistence.PersistedPacket
		err := e.ss.PacketsForEach(e.ctx, "s", c, func(p *persistence.PersistedPacket) (bool, error) {
			if p.PacketID == target {
				found = p
				return true, persistence.ErrStopIteration
			}
			return false, nil
		})
		e.ok(err, "PacketsForEach")
		e.eq(diffPacket(found, ps[3], true), "packet found by id")
		e.queue("s", c, slices.Delete(slices.Clone(ps), 3, 4))
	}},
}

// multiClassCases exercise PacketsStore and PacketsDelete across classes.
var multiClassCases = []tcase{
	{"PacketsStoreAllClassesInOrder", func(e *env) {
		e.create("s")
		pre := e.appendN("s", persistence.ClassQoS12, 2)
		pp := &persistence.PersistedPackets{}
		want := map[persistence.PacketClass][]*persistence.PersistedPacket{}
		for i := range 12 {
			c := persistence.PacketClasses[i%4]
			p := pkt(i)
			want[c] = append(want[c], p.Clone())
			switch c {
			case persistence.ClassQoS0:
				pp.QoS0 = append(pp.QoS0, p)
			case persistence.ClassQoS12:
				pp.QoS12 = append(pp.QoS12, p)
			case persistence.ClassUnAck:
				pp.UnAck = append(pp.UnAck, p)
			case persistence.ClassIncoming:
				pp.Incoming = append(pp.Incoming, p)
			}
		}
		e.ok(e.ss.PacketsStore(e.ctx, "s", pp), "PacketsStore")
		for _, c := range persistence.PacketClasses {
			scribbleAll(pp.Class(c))
		}
		for _, c := range persistence.PacketClasses {
			got := e.read("s", c)
			w := want[c]
			if c == persistence.ClassQoS12 {
				w = append(slices.Clone(pre), w...)
			}
			if len(got) != len(w) {
				e.fatalf("class %s holds %d packets after PacketsStore, want %d", c, len(got), len(w))
			}
			for i := range got {
				if i > 0 && got[i].Seq <= got[i-1].Seq {
					e.fatalf("class %s: seq %d after %d", c, got[i].Seq, got[i-1].Seq)
				}
				e.eq(diffPacket(got[i], w[i], i < len(pre) && c == persistence.ClassQoS12), "class %s packet #%d", c, i)
			}
		}
	}},
	{"PacketsStoreInvalidStoresNothing", func(e *env) {
		e.create("s")
		bad := pkt(2)
		bad.QoS = 3
		pp := &persistence.PersistedPackets{QoS0: []*persistence.PersistedPacket{pkt(0)}, UnAck: []*persistence.PersistedPacket{pkt(1), bad}}
		e.is(e.ss.PacketsStore(e.ctx, "s", pp), persistence.ErrInvalidArgument, "PacketsStore with a QoS 3 packet")
		for _, c := range persistence.PacketClasses {
			e.queue("s", c, nil)
		}
	}},
	{"PacketsStoreEmpty", func(e *env) {
		e.create("s")
		e.ok(e.ss.PacketsStore(e.ctx, "s", &persistence.PersistedPackets{}), "PacketsStore of nothing")
		for _, c := range persistence.PacketClasses {
			e.queue("s", c, nil)
		}
	}},
	{"PacketsDeleteAllClasses", func(e *env) {
		e.create("s")
		for _, c := range persistence.PacketClasses {
			e.appendN("s", c, 3)
		}
		e.ok(e.ss.PacketsDelete(e.ctx, "s"), "PacketsDelete()")
		for _, c := range persistence.PacketClasses {
			e.queue("s", c, nil)
		}
		ok, err := e.ss.Exists(e.ctx, "s")
		e.ok(err, "Exists")
		if !ok {
			e.fatalf("PacketsDelete removed the session itself")
		}
	}},
	{"PacketsDeleteSomeClasses", func(e *env) {
		e.create("s")
		keep := map[persistence.PacketClass][]*persistence.PersistedPacket{}
		for _, c := range persistence.PacketClasses {
			keep[c] = e.appendN("s", c, 2)
		}
		e.ok(e.ss.PacketsDelete(e.ctx, "s", persistence.ClassQoS0, persistence.ClassIncoming), "PacketsDelete(QoS0, Incoming)")
		e.queue("s", persistence.ClassQoS0, nil)
		e.queue("s", persistence.ClassIncoming, nil)
		e.queue("s", persistence.ClassQoS12, keep[persistence.ClassQoS12])
		e.queue("s", persistence.ClassUnAck, keep[persistence.ClassUnAck])
	}},
	{"PacketsDeleteOnEmptyIsNoop", func(e *env) {
		e.create("s")
		e.ok(e.ss.PacketsDelete(e.ctx, "s"), "PacketsDelete of empty queues")
		e.ok(e.ss.PacketsDelete(e.ctx, "s", persistence.ClassUnAck), "PacketsDelete(UnAck) of an empty queue")
	}},
	// Rules the randomized model checks, as named cases.
	{"GetMissingReturnsNoValue", func(e *env) {
		e.create("s")
		q := e.appendN("s", cq, 2)
		e.ok(e.ss.PacketDelete(e.ctx, "s", cq, q[0].Seq), "PacketDelete")
		p, err := e.ss.PacketGet(e.ctx, "s", cq, q[0].Seq)
		e.is(err, persistence.ErrNotFound, "PacketGet of an acknowledged packet")
		st, serr := e.ss.StateGet(e.ctx, "s")
		e.is(serr, persistence.ErrNotFound, "StateGet of a session without state")
		r, rerr := e.rs.Get(e.ctx, "nothing/here")
		e.is(rerr, persistence.ErrNotFound, "Retained.Get of a topic without a message")
		if p != nil || st != nil || r != nil {
			e.fatalf("a get that returned ErrNotFound also returned a value (packet %v, state %v, retained %v)", p != nil, st != nil, r != nil)
		}
	}},
	{"PacketsStoreAfterExisting", func(e *env) {
		// PacketsStore appends after what a queue holds, with greater seqs, in
		// slice order, after deletes too.
		e.create("s")
		old := e.appendN("s", cq, 3)
		e.ok(e.ss.PacketDelete(e.ctx, "s", cq, old[2].Seq), "PacketDelete of the tail")
		pp := &persistence.PersistedPackets{QoS12: []*persistence.PersistedPacket{pkt(10), pkt(11)}}
		e.ok(e.ss.PacketsStore(e.ctx, "s", pp), "PacketsStore")
		got := e.read("s", cq)
		if len(got) != 4 {
			e.fatalf("queue holds %d packets after PacketsStore of 2 onto 2, want 4", len(got))
		}
		e.eq(diffQueue(got[:2], old[:2]), "the packets stored before PacketsStore")
		for i, p := range got[2:] {
			e.eq(diffPacket(p, pkt(10+i), false), "packet #%d stored by PacketsStore", i)
			if p.Seq <= old[2].Seq {
				e.fatalf("PacketsStore assigned seq %d, not above the deleted tail's %d: seqs are never reused", p.Seq, old[2].Seq)
			}
		}
	}},
	{"SessionsAreIndependent", func(e *env) {
		e.create("a", "a:b", "b")
		pa := e.appendN("a", persistence.ClassQoS12, 3)
		pab := e.appendN("a:b", persistence.ClassQoS12, 2)
		e.ok(e.ss.PacketsDelete(e.ctx, "b"), "PacketsDelete(b)")
		e.queue("a", persistence.ClassQoS12, pa)
		e.queue("a:b", persistence.ClassQoS12, pab)
		e.queue("b", persistence.ClassQoS12, nil)
	}},
}
