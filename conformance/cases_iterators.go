package conformance

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Iterators: every iteration of the API (PacketsForEach, LoadForEach,
// ExpiredForEach, Retained.Load and Retained.LoadMatching) without exception stops
// between two callbacks when its context is cancelled, stops cleanly on a wrapped
// ErrStopIteration, returns a wrapped callback error, and stops with ErrClosed when
// the store is closed during the iteration.
//
// Close during an iteration, the promise: Close may be called while an iteration
// runs (from its callback, as here, or from another goroutine) and returns without
// waiting for the iteration to end; the iteration calls no callback after Close
// returned and returns an error matching ErrClosed. Deletes its callbacks asked for
// before Close may or may not have been applied.

func runIterators(t *testing.T, h Harness) {
	for _, it := range iterators {
		t.Run(it.name, func(t *testing.T) {
			var cs []tcase
			for _, c := range iteratorCases {
				cs = append(cs, tcase{c.name, func(e *env) { c.run(e, it) }})
			}
			runCases(t, h, cs)
		})
	}
}

// iterItems is how many items each iterator case stores: more than a page of any of
// our drivers.
const iterItems = 600

// iterator is one iterating method, seen as a source of items and a per-item
// callback returning an error.
type iterator struct {
	name string
	// fill stores n items the iteration visits.
	fill func(e *env, n int)
	// run iterates with ctx, calling fn once per item.
	run func(e *env, ctx context.Context, fn func() error) error
}

var iterators = []iterator{
	{"PacketsForEach", func(e *env, n int) {
		e.create("s")
		e.fillQueue("s", cq, 0, n)
	}, func(e *env, ctx context.Context, fn func() error) error {
		return e.ss.PacketsForEach(ctx, "s", cq, func(*persistence.PersistedPacket) (bool, error) { return false, fn() })
	}},
	{"LoadForEach", func(e *env, n int) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("s%04d", i)
		}
		e.createMany(ids)
	}, func(e *env, ctx context.Context, fn func() error) error {
		return e.ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { return fn() })
	}},
	{"ExpiredForEach", func(e *env, n int) {
		var b persistence.Batch
		for i := range n {
			id := fmt.Sprintf("s%04d", i)
			b.Create(id, e.base()).ExpiryStore(id, persistence.SessionExpiry{ExpireAt: e.at(-time.Duration(i+1) * time.Second)})
		}
		_, err := e.ss.Apply(e.ctx, &b)
		e.ok(err, "Apply")
	}, func(e *env, ctx context.Context, fn func() error) error {
		return e.ss.ExpiredForEach(ctx, e.clock.Now(), func(string, persistence.SessionExpiry) error { return fn() })
	}},
	{"RetainedLoad", fillRetainedN, func(e *env, ctx context.Context, fn func() error) error {
		return e.rs.Load(ctx, func(*persistence.RetainedMessage) error { return fn() })
	}},
	{"RetainedLoadMatching", fillRetainedN, func(e *env, ctx context.Context, fn func() error) error {
		return e.rs.LoadMatching(ctx, []string{"t/+/x", "t/#"}, func(*persistence.RetainedMessage) error { return fn() })
	}},
}

func fillRetainedN(e *env, n int) {
	var msgs []*persistence.RetainedMessage
	for i := range n {
		msgs = append(msgs, &persistence.RetainedMessage{Topic: fmt.Sprintf("t/%04d/x", i), Packet: pkt(i % 10)})
	}
	e.ok(e.rs.Store(e.ctx, msgs), "Retained.Store")
}

type iteratorCase struct {
	name string
	run  func(e *env, it iterator)
}

var iteratorCases = []iteratorCase{
	{"VisitsEverythingOnce", func(e *env, it iterator) {
		it.fill(e, iterItems)
		n := 0
		e.ok(it.run(e, e.ctx, func() error { n++; return nil }), "%s", it.name)
		if n != iterItems {
			e.fatalf("%s visited %d items, want %d", it.name, n, iterItems)
		}
	}},
	{"CancelBetweenCallbacks", func(e *env, it iterator) {
		it.fill(e, iterItems)
		for _, at := range []int{1, 7, 300} {
			ctx, cancel := context.WithCancel(e.ctx)
			n := 0
			err := it.run(e, ctx, func() error {
				n++
				if n == at {
					cancel()
				}
				return nil
			})
			cancel()
			e.is(err, context.Canceled, "%s whose context the callback cancels at item %d of %d", it.name, at, iterItems)
			if n != at {
				e.fatalf("%s called its callback %d times after its context was cancelled at item %d", it.name, n-at, at)
			}
		}
	}},
	{"WrappedStopIteration", func(e *env, it iterator) {
		it.fill(e, iterItems)
		for _, at := range []int{1, 5, 257} {
			n := 0
			err := it.run(e, e.ctx, func() error {
				n++
				if n == at {
					return fmt.Errorf("broker is done with this window: %w", persistence.ErrStopIteration)
				}
				return nil
			})
			e.ok(err, "%s whose callback returns a wrapped ErrStopIteration at item %d", it.name, at)
			if n != at {
				e.fatalf("%s called its callback %d more times after a wrapped ErrStopIteration", it.name, n-at)
			}
		}
	}},
	{"WrappedCallbackErrorReturned", func(e *env, it iterator) {
		it.fill(e, iterItems)
		n := 0
		err := it.run(e, e.ctx, func() error {
			n++
			if n == 3 {
				return fmt.Errorf("item %d: %w", n, errCase)
			}
			return nil
		})
		e.is(err, errCase, "%s whose callback returns a wrapped error", it.name)
		if n != 3 {
			e.fatalf("%s called its callback %d more times after it returned an error", it.name, n-3)
		}
	}},
	{"CloseFromCallback", func(e *env, it iterator) {
		it.fill(e, iterItems)
		n, after := 0, 0
		closed := false
		var closeErr error
		err := it.run(e, e.ctx, func() error {
			if closed {
				after++
				return nil
			}
			n++
			if n == 2 {
				closeErr = e.p.Close()
				closed = true
			}
			return nil
		})
		e.ok(closeErr, "Close called from the %s callback", it.name)
		e.is(err, persistence.ErrClosed, "%s during which the store was closed", it.name)
		if after != 0 {
			e.fatalf("%s called its callback %d times after Close returned", it.name, after)
		}
		_, err = e.ss.Count(e.ctx)
		e.is(err, persistence.ErrClosed, "Count after Close during %s", it.name)
	}},
	{"CloseFromOtherGoroutine", func(e *env, it iterator) {
		// Close runs in another goroutine while the callback waits for it: Close
		// must not wait for the iteration to end.
		it.fill(e, iterItems)
		n, after := 0, 0
		var closeErr error
		closed, hung := false, false
		wait := e.h.caseTimeout() / 3
		err := it.run(e, e.ctx, func() error {
			if closed {
				after++
				return nil
			}
			n++
			if n == 3 {
				done := make(chan error, 1)
				go func() { done <- e.p.Close() }()
				timer := time.NewTimer(wait)
				defer timer.Stop()
				select {
				case closeErr = <-done:
				case <-timer.C:
					hung = true
					return errCase
				}
				closed = true
			}
			return nil
		})
		if hung {
			e.fatalf("Close called from another goroutine did not return within %v while a %s callback was running: "+
				"Close must not wait for an iteration to end", wait, it.name)
		}
		e.ok(closeErr, "Close during %s", it.name)
		e.is(err, persistence.ErrClosed, "%s during which another goroutine closed the store", it.name)
		if after != 0 {
			e.fatalf("%s called its callback %d times after Close returned", it.name, after)
		}
	}},
}
