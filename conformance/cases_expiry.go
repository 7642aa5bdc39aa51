package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Expiry: absolute session-expiry and will deadlines, and ExpiredForEach, driven by
// the case's fake clock so nothing sleeps.

func runExpiry(t *testing.T, h Harness) { runCases(t, h, expiryCases) }

// at returns the clock's current time plus d.
func (e *env) at(d time.Duration) time.Time { return e.clock.Now().Add(d) }

func (e *env) setExpiry(id string, x persistence.SessionExpiry) {
	e.ok(e.ss.ExpiryStore(e.ctx, id, x), "ExpiryStore(%q)", id)
}

var expiryCases = []tcase{
	{"StoreGetToTheNanosecond", func(e *env) {
		e.create("s")
		loc := time.FixedZone("Y", -7*3600)
		x := persistence.SessionExpiry{ExpireAt: e.at(time.Hour + 1).In(loc), WillAt: e.at(time.Minute + 999)}
		e.setExpiry("s", x)
		got, err := e.ss.ExpiryGet(e.ctx, "s")
		e.ok(err, "ExpiryGet")
		e.eq(diffExpiry(got, x), "ExpiryGet")
	}},
	{"OneDeadlineOnly", func(e *env) {
		e.create("s", "t")
		xs := persistence.SessionExpiry{ExpireAt: e.at(time.Hour)}
		xt := persistence.SessionExpiry{WillAt: e.at(time.Hour)}
		e.setExpiry("s", xs)
		e.setExpiry("t", xt)
		for id, x := range map[string]persistence.SessionExpiry{"s": xs, "t": xt} {
			got, err := e.ss.ExpiryGet(e.ctx, id)
			e.ok(err, "ExpiryGet(%q)", id)
			e.eq(diffExpiry(got, x), "ExpiryGet(%q)", id)
		}
	}},
	{"GetWithoutDeadlinesIsErrNotFound", func(e *env) {
		e.create("s")
		_, err := e.ss.ExpiryGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "ExpiryGet of a session without deadlines")
	}},
	{"StoreZeroDeletes", func(e *env) {
		e.create("s")
		e.setExpiry("s", persistence.SessionExpiry{ExpireAt: e.at(0)})
		e.setExpiry("s", persistence.SessionExpiry{})
		_, err := e.ss.ExpiryGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "ExpiryGet after storing zero deadlines")
		e.expired(e.at(time.Hour))
	}},
	{"Delete", func(e *env) {
		e.create("s")
		e.setExpiry("s", persistence.SessionExpiry{ExpireAt: e.at(0)})
		e.ok(e.ss.ExpiryDelete(e.ctx, "s"), "ExpiryDelete")
		_, err := e.ss.ExpiryGet(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "ExpiryGet after ExpiryDelete")
		e.expired(e.at(time.Hour))
		ok, err := e.ss.Exists(e.ctx, "s")
		e.ok(err, "Exists")
		if !ok {
			e.fatalf("ExpiryDelete removed the session")
		}
	}},
	{"DeleteMissingIsNoop", func(e *env) {
		e.create("s")
		e.ok(e.ss.ExpiryDelete(e.ctx, "s"), "ExpiryDelete without deadlines")
		e.ok(e.ss.ExpiryDelete(e.ctx, "s"), "ExpiryDelete twice")
	}},
	{"StoreReplacesDeadlines", func(e *env) {
		e.create("s")
		e.setExpiry("s", persistence.SessionExpiry{ExpireAt: e.at(time.Second), WillAt: e.at(2 * time.Second)})
		later := persistence.SessionExpiry{ExpireAt: e.at(time.Hour)}
		e.setExpiry("s", later)
		got, err := e.ss.ExpiryGet(e.ctx, "s")
		e.ok(err, "ExpiryGet")
		e.eq(diffExpiry(got, later), "ExpiryGet after replacing the deadlines")
		e.expired(e.at(time.Minute)) // the old deadlines are not indexed any more
		e.expired(e.at(time.Hour), "s")
	}},
	{"OnlyDueSessions", func(e *env) {
		e.create("past", "now", "future", "will-past", "none", "both-future")
		e.setExpiry("past", persistence.SessionExpiry{ExpireAt: e.at(-time.Hour)})
		e.setExpiry("now", persistence.SessionExpiry{ExpireAt: e.at(0)})
		e.setExpiry("future", persistence.SessionExpiry{ExpireAt: e.at(time.Nanosecond)})
		e.setExpiry("will-past", persistence.SessionExpiry{WillAt: e.at(-time.Second), ExpireAt: e.at(time.Hour)})
		e.setExpiry("both-future", persistence.SessionExpiry{WillAt: e.at(time.Second), ExpireAt: e.at(time.Hour)})
		e.expired(e.clock.Now(), "past", "now", "will-past")
	}},
	{"DueExactlyAtDeadline", func(e *env) {
		e.create("s")
		d := e.at(time.Minute + 1)
		e.setExpiry("s", persistence.SessionExpiry{WillAt: d})
		e.expired(d.Add(-1))
		e.expired(d, "s")
	}},
	{"EarliestDeadlineFirst", func(e *env) {
		ids := []string{"d3", "d1", "d4", "d0", "d2"}
		e.create(ids...)
		for _, id := range ids {
			var n int
			fmt.Sscanf(id, "d%d", &n)
			x := persistence.SessionExpiry{ExpireAt: e.at(time.Duration(n) * time.Second)}
			if n%2 == 1 { // the earlier of the two deadlines counts
				x = persistence.SessionExpiry{ExpireAt: e.at(time.Hour), WillAt: e.at(time.Duration(n) * time.Second)}
			}
			e.setExpiry(id, x)
		}
		got := e.expired(e.at(time.Minute), ids...)
		for i, id := range got {
			if want := fmt.Sprintf("d%d", i); id != want {
				e.fatalf("ExpiredForEach order %q, want earliest deadline first (d0 … d4)", got)
			}
		}
	}},
	{"FakeClockDrivesExpiry", func(e *env) {
		e.create("a", "b", "c")
		e.setExpiry("a", persistence.SessionExpiry{ExpireAt: e.at(10 * time.Second)})
		e.setExpiry("b", persistence.SessionExpiry{WillAt: e.at(20 * time.Second)})
		e.setExpiry("c", persistence.SessionExpiry{ExpireAt: e.at(30 * time.Second)})
		e.expired(e.clock.Now())
		e.clock.Advance(10 * time.Second)
		e.expired(e.clock.Now(), "a")
		e.clock.Advance(15 * time.Second)
		e.expired(e.clock.Now(), "a", "b")
		e.clock.Advance(time.Hour)
		e.expired(e.clock.Now(), "a", "b", "c")
	}},
	{"CallbackMayDeleteSession", func(e *env) {
		e.create("a", "b", "c")
		for _, id := range []string{"a", "b", "c"} {
			e.appendN(id, persistence.ClassQoS12, 2)
			e.setExpiry(id, persistence.SessionExpiry{ExpireAt: e.at(-time.Second)})
		}
		err := e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(id string, _ persistence.SessionExpiry) error {
			return e.ss.Delete(e.ctx, id)
		})
		e.ok(err, "ExpiredForEach deleting every due session")
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 0 {
			e.fatalf("Count = %d after deleting every expired session, want 0", n)
		}
		e.expired(e.at(time.Hour))
	}},
	{"CallbackMayPostpone", func(e *env) {
		e.create("a", "b")
		e.setExpiry("a", persistence.SessionExpiry{WillAt: e.at(-time.Second), ExpireAt: e.at(time.Hour)})
		e.setExpiry("b", persistence.SessionExpiry{ExpireAt: e.at(-time.Second)})
		err := e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(id string, x persistence.SessionExpiry) error {
			if id == "a" { // the will was published: only the session deadline remains
				return e.ss.ExpiryStore(e.ctx, id, persistence.SessionExpiry{ExpireAt: x.ExpireAt})
			}
			return nil
		})
		e.ok(err, "ExpiredForEach")
		e.expired(e.clock.Now(), "b")
		e.expired(e.at(time.Hour), "a", "b")
	}},
	{"CallbackErrorReturned", func(e *env) {
		e.create("a", "b", "c")
		for _, id := range []string{"a", "b", "c"} {
			e.setExpiry(id, persistence.SessionExpiry{ExpireAt: e.at(-time.Second)})
		}
		n := 0
		err := e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(string, persistence.SessionExpiry) error { n++; return errCase })
		e.is(err, errCase, "ExpiredForEach whose callback fails")
		if n != 1 {
			e.fatalf("callback called %d times after an error, want 1", n)
		}
	}},
	{"StopIteration", func(e *env) {
		e.create("a", "b", "c")
		for i, id := range []string{"a", "b", "c"} {
			e.setExpiry(id, persistence.SessionExpiry{ExpireAt: e.at(time.Duration(i-5) * time.Second)})
		}
		var got []string
		err := e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(id string, _ persistence.SessionExpiry) error {
			got = append(got, id)
			if len(got) == 2 {
				return persistence.ErrStopIteration
			}
			return nil
		})
		e.ok(err, "ExpiredForEach stopped with ErrStopIteration")
		if len(got) != 2 || got[0] != "a" || got[1] != "b" {
			e.fatalf("visited %q, want [a b] (earliest first, then stop)", got)
		}
	}},
	{"DeletedSessionNotVisited", func(e *env) {
		e.create("a", "b")
		e.setExpiry("a", persistence.SessionExpiry{ExpireAt: e.at(0)})
		e.setExpiry("b", persistence.SessionExpiry{ExpireAt: e.at(0)})
		e.ok(e.ss.Delete(e.ctx, "a"), "Delete")
		e.expired(e.clock.Now(), "b")
	}},
	{"ManySessionsFewDue", func(e *env) {
		var due []string
		for i := range 500 {
			id := fmt.Sprintf("s%03d", i)
			e.create(id)
			d := time.Duration(i+1) * time.Hour
			if i%100 == 0 {
				d = -time.Duration(i+1) * time.Second
				due = append(due, id)
			}
			e.setExpiry(id, persistence.SessionExpiry{ExpireAt: e.at(d)})
		}
		e.expired(e.clock.Now(), due...)
	}},
	{"DeadlineValuesPassedToCallback", func(e *env) {
		e.create("s")
		x := persistence.SessionExpiry{ExpireAt: e.at(-time.Second + 7), WillAt: e.at(time.Hour + 3)}
		e.setExpiry("s", x)
		var got persistence.SessionExpiry
		err := e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(_ string, y persistence.SessionExpiry) error { got = y; return nil })
		e.ok(err, "ExpiredForEach")
		e.eq(diffExpiry(got, x), "deadlines given to the callback")
	}},
}
