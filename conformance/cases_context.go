package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Context: a context that is already done makes every call return ctx.Err() and
// write nothing; an iteration whose context ends stops.

func runContext(t *testing.T, h Harness) {
	for _, kind := range []string{"Cancelled", "DeadlineExceeded"} {
		t.Run(kind, func(t *testing.T) {
			var cs []tcase
			for _, c := range apiCalls {
				cs = append(cs, tcase{c.name, func(e *env) {
					f := e.prepare()
					before := e.snapshot()
					ctx, cancel, want := doneContext(e.ctx, kind)
					defer cancel()
					err := c.fn(e, ctx, f, "s")
					if !errors.Is(err, want) {
						e.fatalf("%s with a done context: got error %v, want one matching %v", c.name, errStr(err), want)
					}
					e.eq(diffSnap(e.snapshot(), before), "store after %s with a done context (nothing may be written)", c.name)
				}})
			}
			runCases(t, h, cs)
		})
	}
	runCases(t, h, contextCases)
}

// doneContext returns a child of parent that is already done, and the error it
// reports.
func doneContext(parent context.Context, kind string) (context.Context, context.CancelFunc, error) {
	if kind == "DeadlineExceeded" {
		ctx, cancel := context.WithDeadline(parent, time.Unix(0, 0))
		return ctx, cancel, context.DeadlineExceeded
	}
	ctx, cancel := context.WithCancel(parent)
	cancel()
	return ctx, cancel, context.Canceled
}

var contextCases = []tcase{
	{"CancelledBatchWritesNothing", func(e *env) {
		f := e.prepare()
		before := e.snapshot()
		var b persistence.Batch
		b.Create("n1", e.base()).PacketAppend("n1", cq, pkt(1)).PacketDelete("s", cq, f.seqs[cq][0]).
			SubscriptionStore("s", sub("z", 1)).StateStore("s", state(9)).ExpiryDelete("s").Delete("s")
		for i := range 200 {
			b.PacketAppend("n1", persistence.ClassQoS0, pkt(i))
		}
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		seqs, err := e.ss.Apply(ctx, &b)
		e.is(err, context.Canceled, "Apply with a cancelled context")
		if len(seqs) != 0 {
			e.fatalf("Apply with a cancelled context returned %d seqs", len(seqs))
		}
		e.eq(diffSnap(e.snapshot(), before), "store after a cancelled Apply")
	}},
	{"PacketIterationStopsWhenCancelled", func(e *env) {
		e.create("s")
		var pp persistence.PersistedPackets
		for i := range 3000 {
			pp.QoS12 = append(pp.QoS12, pkt(i))
		}
		e.ok(e.ss.PacketsStore(e.ctx, "s", &pp), "PacketsStore")
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		n := 0
		err := e.ss.PacketsForEach(ctx, "s", cq, func(*persistence.PersistedPacket) (bool, error) {
			n++
			if n == 10 {
				cancel()
			}
			return false, nil
		})
		e.is(err, context.Canceled, "PacketsForEach whose context is cancelled by the callback (visited %d of 3000)", n)
	}},
	{"SessionIterationStopsWhenCancelled", func(e *env) {
		for i := range 300 {
			e.create(fmt.Sprintf("s%d", i))
		}
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		n := 0
		err := e.ss.LoadForEach(ctx, func(*persistence.LoadedSession) error {
			n++
			if n == 10 {
				cancel()
			}
			return nil
		})
		e.is(err, context.Canceled, "LoadForEach whose context is cancelled by the callback (visited %d of 300)", n)
	}},
	{"RetainedIterationStopsWhenCancelled", func(e *env) {
		var msgs []*persistence.RetainedMessage
		for i := range 1000 {
			msgs = append(msgs, &persistence.RetainedMessage{Topic: fmt.Sprintf("t/%d", i), Packet: pkt(i)})
		}
		e.ok(e.rs.Store(e.ctx, msgs), "Store")
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		n := 0
		err := e.rs.LoadMatching(ctx, []string{"t/#"}, func(*persistence.RetainedMessage) error {
			n++
			if n == 10 {
				cancel()
			}
			return nil
		})
		e.is(err, context.Canceled, "LoadMatching whose context is cancelled by the callback (visited %d of 1000)", n)
	}},
	{"LiveContextAfterCancelledOne", func(e *env) {
		// A cancelled call leaves the store usable.
		e.create("s")
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		_, err := e.ss.PacketAppend(ctx, "s", cq, pkt(1))
		e.is(err, context.Canceled, "PacketAppend with a cancelled context")
		e.queue("s", cq, e.appendN("s", cq, 2))
	}},
}
