package conformance

import (
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Close: idempotent, and every call afterwards returns ErrClosed.

func runClose(t *testing.T, h Harness) {
	t.Run("AfterClose", func(t *testing.T) {
		var cs []tcase
		for _, c := range apiCalls {
			cs = append(cs, tcase{c.name, func(e *env) {
				f := e.prepare()
				e.ok(e.p.Close(), "Close")
				e.is(c.fn(e, e.ctx, f, "s"), persistence.ErrClosed, "%s after Close", c.name)
				// Accessors taken after Close give values that fail the same way.
				e.setStore(e.p)
				e.is(c.fn(e, e.ctx, f, "s"), persistence.ErrClosed, "%s after Close (accessor called after Close)", c.name)
			}})
		}
		runCases(t, h, cs)
	})
	runCases(t, h, closeCases)
}

var closeCases = []tcase{
	{"Idempotent", func(e *env) {
		e.prepare()
		e.ok(e.p.Close(), "Close")
		e.ok(e.p.Close(), "second Close")
		e.ok(e.p.Close(), "third Close")
	}},
	{"EmptyStore", func(e *env) {
		e.ok(e.p.Close(), "Close of an empty store")
		_, err := e.ss.Count(e.ctx)
		e.is(err, persistence.ErrClosed, "Count after Close")
	}},
	{"CallbacksNotCalledAfterClose", func(e *env) {
		e.prepare()
		e.ok(e.p.Close(), "Close")
		called := false
		err := e.ss.PacketsForEach(e.ctx, "s", cq, func(*persistence.PersistedPacket) (bool, error) { called = true; return false, nil })
		e.is(err, persistence.ErrClosed, "PacketsForEach after Close")
		err = e.rs.Load(e.ctx, func(*persistence.RetainedMessage) error { called = true; return nil })
		e.is(err, persistence.ErrClosed, "Retained.Load after Close")
		if called {
			e.fatalf("a callback was called after Close")
		}
	}},
	{"OtherStoresUnaffected", func(e *env) {
		other := e.fresh()
		e.prepare()
		e.ok(e.p.Close(), "Close")
		e.ok(other.Sessions().Create(e.ctx, "x", e.base()), "Create in another store after closing one")
		n, err := other.Sessions().Count(e.ctx)
		e.ok(err, "Count of the other store")
		if n != 1 {
			e.fatalf("Count of the other store = %d, want 1", n)
		}
	}},
}
