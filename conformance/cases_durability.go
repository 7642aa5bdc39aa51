package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Durability: state built through the public API is identical after Harness.Reopen
// (close and open the same data) and after Harness.Crash (drop the handle without
// Close): every call that returned success before is there afterwards.

func runDurability(t *testing.T, h Harness) {
	for _, mode := range []struct {
		name  string
		crash bool
	}{{"Reopen", false}, {"Crash", true}} {
		t.Run(mode.name, func(t *testing.T) {
			var cs []tcase
			for _, d := range durabilityCases {
				cs = append(cs, tcase{d.name, func(e *env) {
					st := d.build(e)
					e.clock.Advance(time.Hour) // a driver that re-stamps anything on open is caught
					e.reopen(mode.crash)
					d.check(e, st)
				}})
			}
			na := (mode.crash && h.Crash == nil) || (!mode.crash && h.Reopen == nil)
			for _, c := range cs {
				t.Run(c.name, func(t *testing.T) {
					if na {
						t.Skipf("not applicable: the harness declares no %s (Harness.%s is nil)", mode.name, mode.name)
					}
					runCase(t, h, c.run)
				})
			}
		})
	}
}

// durabilityCase builds state, then checks it after the store is reopened.
type durabilityCase struct {
	name  string
	build func(e *env) any
	check func(e *env, st any)
}

// durable is what most cases remember: a snapshot of the whole store and the
// largest seq assigned in each queue of session "s".
type durable struct {
	snap string
	max  map[persistence.PacketClass]uint64
}

// buildFull builds a store holding every kind of state, with updates and deletes
// applied, and snapshots it.
func buildFull(e *env) *durable {
	d := &durable{max: map[persistence.PacketClass]uint64{}}
	e.create("s", "other", "a:b", "gone")
	for _, c := range persistence.PacketClasses {
		ps := e.appendN("s", c, 6)
		u := pkt(60 + int(c))
		u.Seq = ps[2].Seq
		e.ok(e.ss.PacketUpdate(e.ctx, "s", c, u), "PacketUpdate")
		e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[0].Seq), "PacketDelete(head)")
		e.ok(e.ss.PacketDelete(e.ctx, "s", c, ps[5].Seq), "PacketDelete(tail)") // the max seq is deleted
		d.max[c] = ps[5].Seq
		e.appendN("other", c, 2)
	}
	e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a/+", 1), sub("$share/g/b/#", 2), sub("c\x00", 3)), "SubscriptionsStore")
	e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "a/+"), "SubscriptionsDelete")
	e.ok(e.ss.SubscriptionsStore(e.ctx, "a:b", sub("x", 4)), "SubscriptionsStore")
	e.ok(e.ss.StateStore(e.ctx, "s", state(3)), "StateStore")
	e.ok(e.ss.StateStore(e.ctx, "other", state(4)), "StateStore")
	e.ok(e.ss.StateDelete(e.ctx, "other"), "StateDelete")
	e.setExpiry("s", persistence.SessionExpiry{ExpireAt: e.at(30*time.Minute + 1), WillAt: e.at(5*time.Minute + 2)})
	e.setExpiry("other", persistence.SessionExpiry{ExpireAt: e.at(2 * time.Hour)})
	e.setExpiry("gone", persistence.SessionExpiry{ExpireAt: e.at(0)})
	e.ok(e.ss.SubscriptionsStore(e.ctx, "gone", sub("g", 1)), "SubscriptionsStore")
	e.ok(e.ss.Delete(e.ctx, "gone"), "Delete")
	for i, topic := range []string{"r/1", "r/2", "$SYS/x", "r\x00"} {
		e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Retained.Put")
	}
	e.ok(e.rs.Delete(e.ctx, "r/2"), "Retained.Delete")
	e.ok(e.rs.Put(e.ctx, "r/1", pkt(9)), "Retained.Put (replace)")
	d.snap = e.snapshot()
	return d
}

var durabilityCases = []durabilityCase{
	{"Everything", func(e *env) any { return buildFull(e) }, func(e *env, st any) {
		e.eq(diffSnap(e.snapshot(), st.(*durable).snap), "store after reopening")
	}},
	{"SeqsContinueAboveOldMaximum", func(e *env) any { return buildFull(e) }, func(e *env, st any) {
		d := st.(*durable)
		for _, c := range persistence.PacketClasses {
			old := e.read("s", c)
			seq, err := e.ss.PacketAppend(e.ctx, "s", c, pkt(100))
			e.ok(err, "PacketAppend after reopening")
			if seq <= d.max[c] {
				e.fatalf("(s, %s): PacketAppend after reopening assigned seq %d, not above %d assigned (and deleted) before: seqs are never reused", c, seq, d.max[c])
			}
			p := pkt(100)
			p.Seq = seq
			e.queue("s", c, append(old, p)) // FIFO holds across the reopen
		}
	}},
	{"SessionBases", func(e *env) any {
		for i := range 5 {
			b := persistence.SessionBase{CreatedAt: caseEpoch.Add(time.Duration(i)*time.Hour + time.Duration(i)), ProtocolVersion: uint8(3 + i%3)}
			e.ok(e.ss.Create(e.ctx, fmt.Sprintf("c%d", i), b), "Create")
		}
		e.ok(e.ss.Delete(e.ctx, "c2"), "Delete")
		return nil
	}, func(e *env, _ any) {
		all := e.loadAll()
		if len(all) != 4 || all["c2"] != nil {
			e.fatalf("after reopening LoadForEach visits %d sessions (c2 deleted: %v), want 4 without c2", len(all), all["c2"] == nil)
		}
		for id, ls := range all {
			var i int
			fmt.Sscanf(id, "c%d", &i)
			want := caseEpoch.Add(time.Duration(i)*time.Hour + time.Duration(i))
			if !ls.Base.CreatedAt.Equal(want) || ls.Base.ProtocolVersion != uint8(3+i%3) {
				e.fatalf("session %q base {%s, v%d}, want {%s, v%d}", id, fmtTime(ls.Base.CreatedAt), ls.Base.ProtocolVersion, fmtTime(want), 3+i%3)
			}
		}
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 4 {
			e.fatalf("Count after reopening = %d, want 4", n)
		}
		e.is(e.ss.Create(e.ctx, "c1", e.base()), persistence.ErrAlreadyExists, "Create of a session that existed before reopening")
		e.create("c2")
	}},
	{"ExpiryIndex", func(e *env) any {
		e.create("a", "b", "c", "d")
		e.setExpiry("a", persistence.SessionExpiry{ExpireAt: e.at(time.Second + 1)})
		e.setExpiry("b", persistence.SessionExpiry{WillAt: e.at(2*time.Second + 2)})
		e.setExpiry("c", persistence.SessionExpiry{ExpireAt: e.at(time.Minute)})
		e.setExpiry("c", persistence.SessionExpiry{ExpireAt: e.at(3 * time.Hour)}) // replaced
		e.setExpiry("d", persistence.SessionExpiry{ExpireAt: e.at(time.Second)})
		e.ok(e.ss.ExpiryDelete(e.ctx, "d"), "ExpiryDelete")
		return nil
	}, func(e *env, _ any) {
		// The clock advanced an hour: a and b are due, c (3 h) and d (deleted) not.
		got := e.expired(e.clock.Now(), "a", "b")
		if got[0] != "a" {
			e.fatalf("ExpiredForEach order %q after reopening, want earliest first", got)
		}
		x, err := e.ss.ExpiryGet(e.ctx, "b")
		e.ok(err, "ExpiryGet")
		e.eq(diffExpiry(x, persistence.SessionExpiry{WillAt: caseEpoch.Add(2*time.Second + 2)}), "ExpiryGet(b)")
		e.expired(e.at(3*time.Hour), "a", "b", "c")
	}},
	{"Retained", func(e *env) any {
		var msgs []*persistence.RetainedMessage
		for i := range 100 {
			msgs = append(msgs, &persistence.RetainedMessage{Topic: fmt.Sprintf("site/%d/temp", i), Packet: pkt(i)})
		}
		e.ok(e.rs.Store(e.ctx, msgs), "Store")
		e.ok(e.rs.Put(e.ctx, "$SYS/up", pkt(1)), "Put")
		e.ok(e.rs.Delete(e.ctx, "site/5/temp"), "Delete")
		return nil
	}, func(e *env, _ any) {
		e.count(100)
		e.matching([]string{"site/+/temp", "site/7/#"}, func() []string {
			var w []string
			for i := range 100 {
				if i != 5 {
					w = append(w, fmt.Sprintf("site/%d/temp", i))
				}
			}
			return w
		}()...)
		e.matching([]string{"#"}, func() []string {
			var w []string
			for i := range 100 {
				if i != 5 {
					w = append(w, fmt.Sprintf("site/%d/temp", i))
				}
			}
			return w
		}()...)
		got, err := e.rs.Get(e.ctx, "site/42/temp")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(42), false), "Get after reopening")
		e.matching([]string{"$SYS/#"}, "$SYS/up")
	}},
	{"RetainedWiped", func(e *env) any {
		e.ok(e.rs.Put(e.ctx, "a", pkt(1)), "Put")
		e.ok(e.rs.Wipe(e.ctx), "Wipe")
		e.ok(e.rs.Put(e.ctx, "b", pkt(2)), "Put")
		return nil
	}, func(e *env, _ any) {
		e.matching(nil, "b")
	}},
	{"SystemInfo", func(e *env) any { return e.info() }, func(e *env, st any) {
		was := st.(persistence.SystemInfo)
		got := e.info()
		if !got.CreatedAt.Equal(caseEpoch) || !got.CreatedAt.Equal(was.CreatedAt) {
			e.fatalf("CreatedAt after reopening = %s, want the original %s", fmtTime(got.CreatedAt), fmtTime(was.CreatedAt))
		}
		if got.SchemaVersion != persistence.SchemaVersion || got.SDKVersion != was.SDKVersion || got.Driver != was.Driver {
			e.fatalf("GetInfo after reopening = %+v, want %+v", got, was)
		}
	}},
	{"Batches", func(e *env) any {
		e.create("s")
		q := e.appendN("s", cq, 3)
		var b persistence.Batch
		b.PacketAppend("s", persistence.ClassUnAck, q[0]).PacketDelete("s", cq, q[0].Seq).Create("n", e.base()).
			PacketAppend("n", persistence.ClassIncoming, pkt(7))
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
		b.Reset()
		missing := pkt(1)
		missing.Seq = q[2].Seq + 1_000_000
		b.PacketDelete("s", cq, q[1].Seq).Create("failed", e.base()).PacketUpdate("s", cq, missing)
		_, err = e.ss.Apply(e.ctx, &b)
		e.is(err, persistence.ErrNotFound, "Apply of a failing batch")
		return e.snapshot()
	}, func(e *env, st any) {
		e.eq(diffSnap(e.snapshot(), st.(string)), "store after reopening (one batch applied, one failed)")
	}},
	{"LongQueue", func(e *env) any {
		e.create("s")
		var pp persistence.PersistedPackets
		for i := range 5000 {
			pp.QoS12 = append(pp.QoS12, pkt(i))
		}
		e.ok(e.ss.PacketsStore(e.ctx, "s", &pp), "PacketsStore")
		n := 0
		err := e.ss.PacketsForEach(e.ctx, "s", cq, func(*persistence.PersistedPacket) (bool, error) {
			n++
			return n <= 1000, nil // ack the first 1000
		})
		e.ok(err, "PacketsForEach")
		return e.read("s", cq)
	}, func(e *env, st any) {
		e.queue("s", cq, st.([]*persistence.PersistedPacket))
	}},
	{"LargePayload", func(e *env) any {
		e.create("s")
		data := bigData(min(e.h.maxPayload(), 4<<20))
		_, err := e.ss.PacketAppend(e.ctx, "s", persistence.ClassUnAck, pktData(data))
		e.ok(err, "PacketAppend")
		e.ok(e.rs.Put(e.ctx, "big", pktData(data)), "Retained.Put")
		return data
	}, func(e *env, st any) {
		data := st.([]byte)
		got := e.read("s", persistence.ClassUnAck)
		if len(got) != 1 {
			e.fatalf("in-flight queue holds %d packets after reopening, want 1", len(got))
		}
		e.eq(sameBytes(got[0].Data, data), "in-flight packet after reopening")
		r, err := e.rs.Get(e.ctx, "big")
		e.ok(err, "Retained.Get")
		e.eq(sameBytes(r.Data, data), "retained message after reopening")
	}},
	{"BinaryIDsAndTopics", func(e *env) any {
		ids := []string{"a", "a\x00", "a\x00b", "a:b", "a/b", "\xff", ""}
		for i, id := range ids {
			e.create(id)
			e.appendN(id, persistence.ClassIncoming, i+1)
			e.ok(e.ss.SubscriptionsStore(e.ctx, id, sub(id+"/#", i)), "SubscriptionsStore")
			e.ok(e.rs.Put(e.ctx, "t/"+id, pkt(i)), "Put")
		}
		e.ok(e.ss.Delete(e.ctx, "a\x00"), "Delete")
		return e.snapshot()
	}, func(e *env, st any) {
		e.eq(diffSnap(e.snapshot(), st.(string)), "store after reopening")
	}},
	{"TwiceInARow", func(e *env) any { return buildFull(e) }, func(e *env, st any) {
		e.eq(diffSnap(e.snapshot(), st.(*durable).snap), "store after the first reopen")
		e.create("late")
		e.appendN("late", cq, 2)
		want := e.snapshot()
		e.reopen(e.h.Reopen == nil) // a crash harness without Reopen crashes again
		e.eq(diffSnap(e.snapshot(), want), "store after a second reopen")
	}},
}
