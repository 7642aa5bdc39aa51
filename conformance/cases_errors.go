package conformance

import (
	"context"
	"errors"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Errors: typed errors for missing sessions and items, and ErrInvalidArgument for
// arguments no store can accept.

func runErrors(t *testing.T, h Harness) {
	t.Run("MissingSession", func(t *testing.T) {
		// Every session-scoped call on a session that was never created, or was
		// deleted, returns ErrNotFound and creates nothing.
		var cs []tcase
		for _, c := range apiCalls {
			if !c.session {
				continue
			}
			cs = append(cs, tcase{c.name, func(e *env) {
				f := e.prepare()
				e.create("gone")
				e.ok(e.ss.Delete(e.ctx, "gone"), "Delete")
				before := e.snapshot()
				for _, id := range []string{"never", "gone", "s\x00", "S"} {
					e.is(c.fn(e, e.ctx, f, id), persistence.ErrNotFound, "%s on missing session %q", c.name, id)
				}
				e.eq(diffSnap(e.snapshot(), before), "store after %s on missing sessions", c.name)
				ok, err := e.ss.Exists(e.ctx, "never")
				e.ok(err, "Exists")
				if ok {
					e.fatalf("%s created the missing session", c.name)
				}
			}})
		}
		runCases(t, h, cs)
	})
	t.Run("InvalidClass", func(t *testing.T) { runCases(t, h, invalidClassCases) })
	runCases(t, h, errorCases)
}

var badClasses = []persistence.PacketClass{0, 5, 255}

// classCall calls one Packets method with class c.
type classCall struct {
	name string
	fn   func(e *env, ctx context.Context, c persistence.PacketClass) error
}

var classCalls = []classCall{
	{"PacketAppend", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		_, err := e.ss.PacketAppend(ctx, "s", c, pkt(1))
		return err
	}},
	{"PacketGet", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		_, err := e.ss.PacketGet(ctx, "s", c, 1)
		return err
	}},
	{"PacketUpdate", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		return e.ss.PacketUpdate(ctx, "s", c, pkt(1))
	}},
	{"PacketDelete", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		return e.ss.PacketDelete(ctx, "s", c, 1)
	}},
	{"PacketCount", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		_, err := e.ss.PacketCount(ctx, "s", c)
		return err
	}},
	{"PacketsForEach", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		var k cb
		return e.ss.PacketsForEach(ctx, "s", c, k.packet)
	}},
	{"PacketsDelete", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		return e.ss.PacketsDelete(ctx, "s", persistence.ClassQoS0, c)
	}},
	{"BatchAppend", func(e *env, ctx context.Context, c persistence.PacketClass) error {
		var b persistence.Batch
		_, err := e.ss.Apply(ctx, b.PacketAppend("s", persistence.ClassQoS0, pkt(1)).PacketAppend("s", c, pkt(2)))
		return err
	}},
}

var invalidClassCases = func() []tcase {
	var cs []tcase
	for _, c := range classCalls {
		cs = append(cs, tcase{c.name, func(e *env) {
			e.prepare()
			before := e.snapshot()
			for _, bad := range badClasses {
				e.is(c.fn(e, e.ctx, bad), persistence.ErrInvalidArgument, "%s with class %d", c.name, uint8(bad))
			}
			e.eq(diffSnap(e.snapshot(), before), "store after %s with invalid classes", c.name)
		}})
	}
	return cs
}()

var errorCases = []tcase{
	{"InvalidPackets", func(e *env) {
		f := e.prepare()
		before := e.snapshot()
		q3 := pkt(1)
		q3.QoS = 3
		for _, p := range []*persistence.PersistedPacket{nil, q3} {
			_, err := e.ss.PacketAppend(e.ctx, "s", cq, p)
			e.is(err, persistence.ErrInvalidArgument, "PacketAppend(%s)", fmtPkt(p))
			if p != nil {
				p.Seq = f.seqs[cq][0]
			}
			e.is(e.ss.PacketUpdate(e.ctx, "s", cq, p), persistence.ErrInvalidArgument, "PacketUpdate(%s)", fmtPkt(p))
		}
		e.eq(diffSnap(e.snapshot(), before), "store after invalid packets")
	}},
	{"InvalidState", func(e *env) {
		e.prepare()
		before := e.snapshot()
		e.is(e.ss.StateStore(e.ctx, "s", nil), persistence.ErrInvalidArgument, "StateStore(nil)")
		st := state(3)
		st.Will.QoS = 3
		e.is(e.ss.StateStore(e.ctx, "s", st), persistence.ErrInvalidArgument, "StateStore with a QoS 3 will")
		e.eq(diffSnap(e.snapshot(), before), "store after invalid states")
	}},
	{"StateGetWithoutStateIsErrNotFound", func(e *env) {
		e.create("s")
		_, err := e.ss.StateGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "StateGet of a session without state")
		e.ok(e.ss.StateStore(e.ctx, "s", state(1)), "StateStore")
		e.ok(e.ss.StateDelete(e.ctx, "s"), "StateDelete")
		_, err = e.ss.StateGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "StateGet after StateDelete")
		e.ok(e.ss.StateDelete(e.ctx, "s"), "StateDelete twice")
	}},
	{"StateRoundTrip", func(e *env) {
		e.create("s")
		for i := range 3 {
			st := state(i)
			if i == 1 {
				st.Will, st.UserData, st.Username, st.ExpiryInterval = nil, nil, "", -1
			}
			e.ok(e.ss.StateStore(e.ctx, "s", st), "StateStore")
			got, err := e.ss.StateGet(e.ctx, "s")
			e.ok(err, "StateGet")
			e.eq(diffState(got, st), "StateGet #%d", i)
		}
	}},
	{"StateIsACopy", func(e *env) {
		e.create("s")
		st := state(4)
		e.ok(e.ss.StateStore(e.ctx, "s", st), "StateStore")
		scribbleState(st)
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, state(4)), "StateGet after mutating the stored state's slices")
		scribbleState(got)
		got, err = e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, state(4)), "StateGet after mutating a returned state's slices")
	}},
	{"InvalidSubscriptions", func(e *env) {
		e.prepare()
		before := e.snapshot()
		for _, s := range []persistence.Subscription{{Filter: ""}, {Filter: "x", QoS: 3}, {Filter: "x", RetainHandling: 3}} {
			e.is(e.ss.SubscriptionsStore(e.ctx, "s", s), persistence.ErrInvalidArgument, "SubscriptionsStore(%+v)", s)
		}
		e.eq(diffSnap(e.snapshot(), before), "store after invalid subscriptions")
	}},
	{"ErrorsAreDistinct", func(e *env) {
		// A missing item is not reported as a missing session, nor the reverse, and
		// neither matches the other sentinels.
		e.create("s")
		_, err := e.ss.PacketGet(e.ctx, "s", cq, 1)
		e.is(err, persistence.ErrNotFound, "PacketGet of a missing packet")
		for _, other := range []error{persistence.ErrClosed, persistence.ErrAlreadyExists, persistence.ErrInvalidArgument, persistence.ErrBrokenEntry} {
			if errors.Is(err, other) {
				e.fatalf("PacketGet of a missing packet returned %v, which also matches %v", err, other)
			}
		}
		err = e.ss.Create(e.ctx, "s", e.base())
		if errors.Is(err, persistence.ErrNotFound) {
			e.fatalf("Create of an existing session matches ErrNotFound: %v", err)
		}
	}},
}
