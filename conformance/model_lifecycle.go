package conformance

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on the store rather than its data: a write with a cancelled context,
// reopening and crashing.

// opCancelled makes a write with a context that is already cancelled: it must return
// ctx.Err() and write nothing.
func (r *modelRunner) opCancelled(ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ids := r.m.ids()
	k := r.rng.IntN(8)
	if len(ids) == 0 && k < 6 {
		k = 6 + r.rng.IntN(2)
	}
	var id string
	if len(ids) > 0 {
		id = pick(r, ids)
	}
	var err error
	switch k {
	case 0:
		r.begin("PacketAppend(%q) with a cancelled context", id)
		_, err = r.ss.PacketAppend(cctx, id, persistence.ClassQoS12, r.packet())
	case 1:
		r.begin("PacketsDelete(%q) with a cancelled context", id)
		err = r.ss.PacketsDelete(cctx, id)
	case 2:
		r.begin("SubscriptionsStore(%q) with a cancelled context", id)
		err = r.ss.SubscriptionsStore(cctx, id, r.subscription())
	case 3:
		r.begin("StateStore(%q) with a cancelled context", id)
		err = r.ss.StateStore(cctx, id, r.state())
	case 4:
		r.begin("Delete(%q) with a cancelled context", id)
		err = r.ss.Delete(cctx, id)
	case 5:
		r.begin("Apply(%q: append, subscribe, expiry) with a cancelled context", id)
		b := (&persistence.Batch{}).PacketAppend(id, persistence.ClassQoS0, r.packet()).
			SubscriptionStore(id, r.subscription()).ExpiryStore(id, persistence.SessionExpiry{ExpireAt: r.when()})
		_, err = r.ss.Apply(cctx, b)
	case 6:
		if m := r.missingID(); m != "" {
			r.begin("Create(%q) with a cancelled context", m)
			err = r.ss.Create(cctx, m, persistence.SessionBase{CreatedAt: r.when()})
			break
		}
		fallthrough
	default:
		topic := pick(r, modelTopics)
		r.begin("Retained.Put(%q) with a cancelled context", topic)
		err = r.rs.Put(cctx, topic, r.retainedPacket())
	}
	r.expect(err, errCanceled)
	r.checkAll(ctx, "after a write with a cancelled context")
}

// opReopen closes and reopens the store (or abandons it, for a crash) and compares
// everything with the model.
func (r *modelRunner) opReopen(ctx context.Context, crash bool) {
	if r.step-r.lastReopen < 10 {
		return // keep reopens apart so that state builds up between them
	}
	r.lastReopen = r.step
	what := "Reopen"
	if crash {
		what = "Crash"
		r.crashes++
	} else {
		r.reopens++
	}
	r.begin("Harness.%s", what)
	r.setStore(r.reopen(crash))
	r.checkAll(ctx, "after Harness."+what)
}
