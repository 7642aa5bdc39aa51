package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Session records: Create, Exists, Count, LoadForEach, Delete and its cascade.

func runSessions(t *testing.T, h Harness) { runCases(t, h, sessionCases) }

var sessionCases = []tcase{
	{"CreateThenExists", func(e *env) {
		ok, err := e.ss.Exists(e.ctx, "c1")
		e.ok(err, "Exists before Create")
		if ok {
			e.fatalf("Exists(%q) = true before Create", "c1")
		}
		e.create("c1")
		ok, err = e.ss.Exists(e.ctx, "c1")
		e.ok(err, "Exists after Create")
		if !ok {
			e.fatalf("Exists(%q) = false after Create", "c1")
		}
	}},
	{"CreateExistingIsErrAlreadyExists", func(e *env) {
		first := persistence.SessionBase{CreatedAt: caseEpoch, ProtocolVersion: 4}
		e.ok(e.ss.Create(e.ctx, "c1", first), "Create")
		e.ok(e.ss.StateStore(e.ctx, "c1", state(1)), "StateStore")
		err := e.ss.Create(e.ctx, "c1", persistence.SessionBase{CreatedAt: caseEpoch.Add(time.Hour), ProtocolVersion: 5})
		e.is(err, persistence.ErrAlreadyExists, "second Create")
		// The failed Create changed nothing: base and state are the first ones.
		ls := e.loadAll()["c1"]
		if ls == nil || !ls.Base.CreatedAt.Equal(first.CreatedAt) || ls.Base.ProtocolVersion != 4 || ls.State == nil {
			e.fatalf("after a refused Create the session is %+v, want the original one", ls)
		}
	}},
	{"ExistsMissingIsFalseNil", func(e *env) {
		ok, err := e.ss.Exists(e.ctx, "nobody")
		e.ok(err, "Exists")
		if ok {
			e.fatalf("Exists of a missing session = true")
		}
	}},
	{"CountEmpty", func(e *env) {
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 0 {
			e.fatalf("Count of a new store = %d, want 0", n)
		}
	}},
	{"CountFollowsCreateAndDelete", func(e *env) {
		for i := range 10 {
			e.create(fmt.Sprintf("s%d", i))
		}
		e.ok(e.ss.Delete(e.ctx, "s3"), "Delete")
		e.ok(e.ss.Delete(e.ctx, "s3"), "Delete again")
		e.ok(e.ss.Delete(e.ctx, "never"), "Delete missing")
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 9 {
			e.fatalf("Count = %d, want 9", n)
		}
	}},
	{"BaseRoundTripsToTheNanosecond", func(e *env) {
		loc := time.FixedZone("X", 3*3600+1800)
		base := persistence.SessionBase{CreatedAt: caseEpoch.In(loc).Add(1), ProtocolVersion: 3}
		e.ok(e.ss.Create(e.ctx, "c", base), "Create")
		ls := e.loadAll()["c"]
		if ls == nil {
			e.fatalf("LoadForEach did not return the session")
		}
		if !ls.Base.CreatedAt.Equal(base.CreatedAt) || ls.Base.ProtocolVersion != 3 {
			e.fatalf("Base = {%s, v%d}, want {%s, v3}", fmtTime(ls.Base.CreatedAt), ls.Base.ProtocolVersion, fmtTime(base.CreatedAt))
		}
	}},
	{"LoadForEachEmpty", func(e *env) {
		err := e.ss.LoadForEach(e.ctx, func(ls *persistence.LoadedSession) error {
			return fmt.Errorf("called for %q in an empty store", ls.ID)
		})
		e.ok(err, "LoadForEach of an empty store")
	}},
	{"LoadForEachReturnsEverything", func(e *env) {
		e.create("full", "bare")
		subs := []persistence.Subscription{sub("a/+", 1), sub("b/#", 2), sub("$share/g/c", 3)}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "full", subs...), "SubscriptionsStore")
		st := state(7)
		e.ok(e.ss.StateStore(e.ctx, "full", st), "StateStore")
		exp := persistence.SessionExpiry{ExpireAt: caseEpoch.Add(time.Hour + 1), WillAt: caseEpoch.Add(time.Minute + 2)}
		e.ok(e.ss.ExpiryStore(e.ctx, "full", exp), "ExpiryStore")
		all := e.loadAll()
		if len(all) != 2 {
			e.fatalf("LoadForEach visited %d sessions, want 2", len(all))
		}
		f := all["full"]
		e.eq(diffState(f.State, st), "LoadForEach(full).State")
		m := map[string]persistence.Subscription{}
		for _, s := range subs {
			m[s.Filter] = s
		}
		e.eq(diffSubs(f.Subscriptions, m), "LoadForEach(full).Subscriptions")
		if f.Expiry == nil {
			e.fatalf("LoadForEach(full).Expiry = nil, want the deadlines")
		}
		e.eq(diffExpiry(*f.Expiry, exp), "LoadForEach(full).Expiry")
		b := all["bare"]
		if b.State != nil || b.Expiry != nil || len(b.Subscriptions) != 0 {
			e.fatalf("LoadForEach(bare) = state %v, expiry %v, %d subscriptions; want none", b.State, b.Expiry, len(b.Subscriptions))
		}
	}},
	{"LoadForEachStopIteration", func(e *env) {
		for i := range 5 {
			e.create(fmt.Sprintf("s%d", i))
		}
		n := 0
		err := e.ss.LoadForEach(e.ctx, func(*persistence.LoadedSession) error {
			n++
			if n == 2 {
				return persistence.ErrStopIteration
			}
			return nil
		})
		e.ok(err, "LoadForEach stopped with ErrStopIteration")
		if n != 2 {
			e.fatalf("callback called %d times, want 2 (ErrStopIteration stops the iteration)", n)
		}
	}},
	{"LoadForEachCallbackErrorReturned", func(e *env) {
		for i := range 5 {
			e.create(fmt.Sprintf("s%d", i))
		}
		n := 0
		err := e.ss.LoadForEach(e.ctx, func(*persistence.LoadedSession) error {
			n++
			return fmt.Errorf("wrapped: %w", errCase)
		})
		e.is(err, errCase, "LoadForEach whose callback fails")
		if n != 1 {
			e.fatalf("callback called %d times after returning an error, want 1", n)
		}
	}},
	{"LoadForEachCallbackMayDelete", func(e *env) {
		for i := range 6 {
			id := fmt.Sprintf("s%d", i)
			e.create(id)
			e.appendN(id, persistence.ClassQoS12, 2)
		}
		seen := 0
		err := e.ss.LoadForEach(e.ctx, func(ls *persistence.LoadedSession) error {
			seen++
			return e.ss.Delete(e.ctx, ls.ID)
		})
		e.ok(err, "LoadForEach deleting every session from its callback")
		if seen != 6 {
			e.fatalf("visited %d sessions, want 6", seen)
		}
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 0 {
			e.fatalf("Count = %d after deleting every session, want 0", n)
		}
	}},
	{"LoadForEachCallbackMayCallAnyMethod", func(e *env) {
		e.create("a", "b")
		err := e.ss.LoadForEach(e.ctx, func(ls *persistence.LoadedSession) error {
			// Reads and writes of the same store: a driver holding a lock deadlocks here.
			if _, err := e.ss.PacketAppend(e.ctx, ls.ID, persistence.ClassQoS0, pkt(1)); err != nil {
				return err
			}
			if err := e.ss.SubscriptionsStore(e.ctx, ls.ID, sub("x", 1)); err != nil {
				return err
			}
			if err := e.ss.StateStore(e.ctx, ls.ID, state(1)); err != nil {
				return err
			}
			if _, err := e.ss.Count(e.ctx); err != nil {
				return err
			}
			if err := e.rs.Put(e.ctx, "t/"+ls.ID, pkt(2)); err != nil {
				return err
			}
			return nil
		})
		e.ok(err, "LoadForEach whose callback calls the store")
		for _, id := range []string{"a", "b"} {
			n, err := e.ss.PacketCount(e.ctx, id, persistence.ClassQoS0)
			e.ok(err, "PacketCount")
			if n != 1 {
				e.fatalf("PacketCount(%q) = %d, want 1 (written from the callback)", id, n)
			}
		}
	}},
	{"DeleteMissingIsNoop", func(e *env) {
		e.ok(e.ss.Delete(e.ctx, "never"), "Delete of a session that never existed")
		e.create("x")
		e.ok(e.ss.Delete(e.ctx, "x"), "Delete")
		e.ok(e.ss.Delete(e.ctx, "x"), "Delete twice")
	}},
	{"DeleteCascadesToEverything", func(e *env) {
		e.create("victim", "other")
		for _, id := range []string{"victim", "other"} {
			for _, c := range persistence.PacketClasses {
				e.appendN(id, c, 3)
			}
			e.ok(e.ss.SubscriptionsStore(e.ctx, id, sub("a/#", 1), sub("b", 2)), "SubscriptionsStore")
			e.ok(e.ss.StateStore(e.ctx, id, state(1)), "StateStore")
			e.ok(e.ss.ExpiryStore(e.ctx, id, persistence.SessionExpiry{ExpireAt: caseEpoch}), "ExpiryStore")
		}
		e.ok(e.rs.Put(e.ctx, "a/b", pkt(1)), "Retained.Put")
		e.ok(e.ss.Delete(e.ctx, "victim"), "Delete")
		e.checkGone("victim")
		// Re-created, it starts empty: nothing of the old session comes back.
		e.create("victim")
		for _, c := range persistence.PacketClasses {
			e.queue("victim", c, nil)
		}
		e.subsSet("victim")
		_, err := e.ss.StateGet(e.ctx, "victim")
		e.is(err, persistence.ErrNotFound, "StateGet of the re-created session")
		_, err = e.ss.ExpiryGet(e.ctx, "victim")
		e.is(err, persistence.ErrNotFound, "ExpiryGet of the re-created session")
		e.expired(caseEpoch, "other")
		// Retained messages are not the session's, and the other session is intact.
		if _, err := e.rs.Get(e.ctx, "a/b"); err != nil {
			e.fatalf("Retained.Get after a session Delete: %v (retained messages are not the session's)", err)
		}
		for _, c := range persistence.PacketClasses {
			if n, err := e.ss.PacketCount(e.ctx, "other", c); err != nil || n != 3 {
				e.fatalf("PacketCount(other, %s) = %d, %v; want 3 (another session's packets)", c, n, err)
			}
		}
		e.subsSet("other", sub("a/#", 1), sub("b", 2))
	}},
	{"DeleteDoesNotTouchPrefixIDs", func(e *env) {
		ids := []string{"a", "a:b", "a/b", "ab", "a\x00", "a\x00b"}
		e.create(ids...)
		for _, id := range ids {
			e.appendN(id, persistence.ClassUnAck, 2)
			e.ok(e.ss.SubscriptionsStore(e.ctx, id, sub("f/"+id, 1)), "SubscriptionsStore")
		}
		e.ok(e.ss.Delete(e.ctx, "a"), "Delete(a)")
		for _, id := range ids[1:] {
			if n, err := e.ss.PacketCount(e.ctx, id, persistence.ClassUnAck); err != nil || n != 2 {
				e.fatalf("after Delete(%q), PacketCount(%q) = %d, %v; want 2", "a", id, n, err)
			}
			e.subsSet(id, sub("f/"+id, 1))
		}
	}},
	{"DeleteThenRecreateNeverReusesSeqs", func(e *env) {
		e.create("s")
		old := e.appendN("s", persistence.ClassQoS12, 3)
		e.ok(e.ss.Delete(e.ctx, "s"), "Delete")
		e.create("s")
		seq, err := e.ss.PacketAppend(e.ctx, "s", persistence.ClassQoS12, pkt(9))
		e.ok(err, "PacketAppend")
		if seq <= old[2].Seq {
			e.fatalf("after Delete and Create, PacketAppend assigned seq %d, not above the old maximum %d", seq, old[2].Seq)
		}
	}},
	{"ManySessions", func(e *env) {
		const n = 300
		for i := range n {
			e.create(fmt.Sprintf("client-%04d", i))
		}
		all := e.loadAll()
		if len(all) != n {
			e.fatalf("LoadForEach visited %d sessions, want %d", len(all), n)
		}
		cnt, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if cnt != n {
			e.fatalf("Count = %d, want %d", cnt, n)
		}
	}},
	{"LoadedSessionIsACopy", func(e *env) {
		e.create("c")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "c", sub("a", 1)), "SubscriptionsStore")
		e.ok(e.ss.StateStore(e.ctx, "c", state(1)), "StateStore")
		ls := e.loadAll()["c"]
		scribbleState(ls.State)
		ls.Subscriptions[0].Filter = "scribbled"
		e.subsSet("c", sub("a", 1))
		st, err := e.ss.StateGet(e.ctx, "c")
		e.ok(err, "StateGet")
		e.eq(diffState(st, state(1)), "StateGet after mutating what LoadForEach returned")
	}},
}

// loadAll returns every session LoadForEach visits, failing on duplicates.
func (e *env) loadAll() map[string]*persistence.LoadedSession {
	all := map[string]*persistence.LoadedSession{}
	var dup string
	err := e.ss.LoadForEach(e.ctx, func(ls *persistence.LoadedSession) error {
		if _, ok := all[ls.ID]; ok {
			dup = ls.ID
		}
		all[ls.ID] = ls
		return nil
	})
	e.ok(err, "LoadForEach")
	if dup != "" {
		e.fatalf("LoadForEach visited %q twice", dup)
	}
	return all
}

// checkGone checks that session id and everything it owned is gone.
func (e *env) checkGone(id string) {
	ok, err := e.ss.Exists(e.ctx, id)
	e.ok(err, "Exists(%q)", id)
	if ok {
		e.fatalf("Exists(%q) = true after Delete", id)
	}
	for _, c := range persistence.PacketClasses {
		_, err := e.ss.PacketCount(e.ctx, id, c)
		e.is(err, persistence.ErrNotFound, "PacketCount(%q, %s) of a deleted session", id, c)
	}
	_, err = e.ss.SubscriptionsLoad(e.ctx, id)
	e.is(err, persistence.ErrNotFound, "SubscriptionsLoad(%q) of a deleted session", id)
	_, err = e.ss.StateGet(e.ctx, id)
	e.is(err, persistence.ErrNotFound, "StateGet(%q) of a deleted session", id)
	_, err = e.ss.ExpiryGet(e.ctx, id)
	e.is(err, persistence.ErrNotFound, "ExpiryGet(%q) of a deleted session", id)
	if _, ok := e.loadAll()[id]; ok {
		e.fatalf("LoadForEach visits %q after Delete", id)
	}
}

// expired returns the ids ExpiredForEach(now) visits and checks they are want (as a
// set).
func (e *env) expired(now time.Time, want ...string) []string {
	var got []string
	err := e.ss.ExpiredForEach(e.ctx, now, func(id string, _ persistence.SessionExpiry) error {
		got = append(got, id)
		return nil
	})
	e.ok(err, "ExpiredForEach(%s)", fmtTime(now))
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		e.fatalf("ExpiredForEach(%s) visited %q, want %q", fmtTime(now), g, w)
	}
	return got
}
