package conformance

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Repair: Store.BrokenForEach, BrokenDelete and Rebuild, the operations behind an
// operator's repair (driver.RepairConn; a driver without it must answer every one
// with ErrNotSupported). On an intact store they find nothing and change nothing; with
// records broken through Harness.Corrupt, BrokenForEach reports exactly those with
// their bytes, BrokenDelete removes each one alone (only while it holds those
// bytes), and afterwards the store reads without error and consistently.

func runRepair(t *testing.T, h Harness) {
	for _, c := range repairCases {
		t.Run(c.name, func(t *testing.T) {
			if c.corrupts && h.Corrupt == nil {
				t.Skip("not applicable: the harness declares no Corrupt (a driver that keeps no encoded bytes)")
			}
			runCase(t, h, func(e *env) {
				if _, ok := e.p.Driver().(driver.RepairConn); !ok {
					notSupported(e)
					return
				}
				c.run(e)
			})
		})
	}
}

// notSupported checks that a driver without the repair capability
// (driver.RepairConn) says so from every repair call.
func notSupported(e *env) {
	e.is(e.p.BrokenForEach(e.ctx, func(*persistence.BrokenRecord) error { return nil }), persistence.ErrNotSupported, "BrokenForEach without driver.RepairConn")
	r := &persistence.BrokenRecord{Kind: persistence.RecordState, ID: "s", Key: []byte("k"), Raw: []byte("v")}
	e.is(e.p.BrokenDelete(e.ctx, r), persistence.ErrNotSupported, "BrokenDelete without driver.RepairConn")
	_, err := e.p.Rebuild(e.ctx)
	e.is(err, persistence.ErrNotSupported, "Rebuild without driver.RepairConn")
}

// repairFixture is what fillRepair stores.
type repairFixture struct {
	packets map[string][]*persistence.PersistedPacket // "a" and "d", class QoS12
	subs    []persistence.Subscription                // of "a"
}

// fillRepair stores sessions a, b, c and d with subscriptions, packets, states and
// deadlines, and retained messages r/0, r/1, r/2.
func (e *env) fillRepair() repairFixture {
	f := repairFixture{packets: map[string][]*persistence.PersistedPacket{}}
	e.create("a", "b", "c", "d")
	for _, id := range []string{"a", "d"} {
		f.packets[id] = e.appendN(id, cq, 4)
		e.appendN(id, persistence.ClassQoS0, 1)
	}
	f.subs = []persistence.Subscription{sub("x/+", 1), sub("y/#", 2)}
	e.ok(e.ss.SubscriptionsStore(e.ctx, "a", f.subs...), "SubscriptionsStore(a)")
	e.ok(e.ss.SubscriptionsStore(e.ctx, "d", sub("z", 3)), "SubscriptionsStore(d)")
	for i, id := range []string{"a", "b", "c", "d"} {
		e.ok(e.ss.StateStore(e.ctx, id, state(i)), "StateStore(%q)", id)
	}
	for i, id := range []string{"a", "c"} {
		exp := persistence.SessionExpiry{ExpireAt: caseEpoch.Add(time.Duration(i+1) * time.Hour)}
		e.ok(e.ss.ExpiryStore(e.ctx, id, exp), "ExpiryStore(%q)", id)
	}
	for i := range 3 {
		e.ok(e.rs.Put(e.ctx, fmt.Sprintf("r/%d", i), pkt(i)), "Retained.Put(r/%d)", i)
	}
	return f
}

// broken returns every record BrokenForEach reports.
func (e *env) broken() []*persistence.BrokenRecord {
	var got []*persistence.BrokenRecord
	err := e.p.BrokenForEach(e.ctx, func(r *persistence.BrokenRecord) error {
		got = append(got, r)
		return nil
	})
	e.ok(err, "BrokenForEach")
	return got
}

// rebuildNothing checks that Rebuild finds nothing to correct.
func (e *env) rebuildNothing(when string) {
	fixes, err := e.p.Rebuild(e.ctx)
	e.ok(err, "Rebuild %s", when)
	if len(fixes) > 0 {
		e.fatalf("Rebuild %s corrected %+v, want nothing", when, fixes)
	}
}

func (e *env) sessionIDs() []string {
	var ids []string
	err := e.ss.LoadForEach(e.ctx, func(ls *persistence.LoadedSession) error {
		ids = append(ids, ls.ID)
		return nil
	})
	e.ok(err, "LoadForEach")
	sort.Strings(ids)
	n, err := e.ss.Count(e.ctx)
	e.ok(err, "Count")
	if n != uint64(len(ids)) {
		e.fatalf("Count = %d, LoadForEach visited %d sessions", n, len(ids))
	}
	return ids
}

var repairCases = []struct {
	name     string
	corrupts bool
	run      func(e *env)
}{
	{"IntactStoreNothingToRepair", false, func(e *env) {
		f := e.fillRepair()
		if got := e.broken(); len(got) > 0 {
			e.fatalf("BrokenForEach on an intact store reported %d records, the first %s %q: %v", len(got), got[0].Kind, got[0].ID, got[0].Err)
		}
		e.rebuildNothing("of an intact store")
		e.queue("a", cq, f.packets["a"])
		e.subsSet("a", f.subs...)
		if ids := e.sessionIDs(); !slices.Equal(ids, []string{"a", "b", "c", "d"}) {
			e.fatalf("sessions after Rebuild: %q", ids)
		}
		e.expired(caseEpoch.AddDate(100, 0, 0), "a", "c")
		e.matching(nil, "r/0", "r/1", "r/2")
	}},
	{"BrokenDeleteOnlyOfTheBytesRead", false, func(e *env) {
		f := e.fillRepair()
		p := f.packets["a"][1]
		r := &persistence.BrokenRecord{Kind: persistence.RecordPacket, ID: "a", Class: cq, Seq: p.Seq,
			Key: []byte("no such key"), Raw: []byte("not the stored bytes")}
		e.is(e.p.BrokenDelete(e.ctx, r), persistence.ErrNotFound, "BrokenDelete of a record that is not stored")
		e.is(e.p.BrokenDelete(e.ctx, &persistence.BrokenRecord{}), persistence.ErrInvalidArgument, "BrokenDelete of kind 0")
		e.is(e.p.BrokenDelete(e.ctx, nil), persistence.ErrInvalidArgument, "BrokenDelete(nil)")
		e.is(e.p.BrokenForEach(e.ctx, nil), persistence.ErrInvalidArgument, "BrokenForEach(nil)")
		e.queue("a", cq, f.packets["a"])
	}},
	{"FindRemoveRebuild", true, func(e *env) {
		f := e.fillRepair()
		victim := f.packets["a"][1]
		targets := []persistence.BrokenRecord{
			{Kind: persistence.RecordPacket, ID: "a", Class: cq, Seq: victim.Seq},
			{Kind: persistence.RecordSubscription, ID: "a", Name: "x/+"},
			{Kind: persistence.RecordState, ID: "b"},
			{Kind: persistence.RecordExpiry, ID: "c"},
			{Kind: persistence.RecordSession, ID: "d"},
			{Kind: persistence.RecordRetained, Name: "r/1"},
		}
		for _, r := range targets {
			e.onMain(func() { e.h.Corrupt(e.h.bounded(e.t), e.p, r) })
		}
		got := e.broken()
		desc := func(r *persistence.BrokenRecord) string {
			s := fmt.Sprintf("%s %q", r.Kind, r.ID)
			switch r.Kind {
			case persistence.RecordPacket:
				s += fmt.Sprintf(" %s %d", r.Class, r.Seq)
			case persistence.RecordRetained:
				s += " " + r.Name
			}
			return s
		}
		var want, have []string
		for i := range targets {
			want = append(want, desc(&targets[i]))
		}
		for _, r := range got {
			have = append(have, desc(r))
			e.is(r.Err, persistence.ErrBrokenEntry, "the Err of broken %s", desc(r))
			if len(r.Raw) == 0 || len(r.Key) == 0 {
				e.fatalf("broken %s: Raw of %d bytes, Key of %d: want both", desc(r), len(r.Raw), len(r.Key))
			}
			if r.Kind == persistence.RecordSubscription && r.Name != "" && r.Name != "x/+" {
				e.fatalf("broken subscription named %q, want x/+ (or no name)", r.Name)
			}
		}
		sort.Strings(want)
		sort.Strings(have)
		if !slices.Equal(have, want) {
			e.fatalf("BrokenForEach reported\n\t%s\nwant\n\t%s", strings.Join(have, "\n\t"), strings.Join(want, "\n\t"))
		}
		for _, r := range got {
			e.ok(e.p.BrokenDelete(e.ctx, r), "BrokenDelete(%s)", desc(r))
			e.is(e.p.BrokenDelete(e.ctx, r), persistence.ErrNotFound, "a second BrokenDelete(%s)", desc(r))
		}
		if _, err := e.p.Rebuild(e.ctx); err != nil {
			e.fatalf("Rebuild after BrokenDelete: %v", err)
		}
		e.rebuildNothing("a second time")
		if got := e.broken(); len(got) > 0 {
			e.fatalf("BrokenForEach after the repair reported %s %q", got[0].Kind, got[0].ID)
		}
		// Everything else is intact and consistent.
		if ids := e.sessionIDs(); !slices.Equal(ids, []string{"a", "b", "c"}) {
			e.fatalf("sessions after the repair: %q, want a, b, c (d's record was broken)", ids)
		}
		e.queue("a", cq, slices.Delete(slices.Clone(f.packets["a"]), 1, 2))
		e.subsSet("a", f.subs[1])
		_, err := e.ss.StateGet(e.ctx, "b")
		e.is(err, persistence.ErrNotFound, "StateGet(b) after its broken state was removed")
		st, err := e.ss.StateGet(e.ctx, "c")
		e.ok(err, "StateGet(c)")
		e.eq(diffState(st, state(2)), "state of c")
		e.expired(caseEpoch.AddDate(100, 0, 0), "a") // c's deadlines were broken
		e.matching(nil, "r/0", "r/2")
		n, err := e.rs.Count(e.ctx)
		e.ok(err, "Retained.Count")
		if n != 2 {
			e.fatalf("Retained.Count after the repair = %d, want 2", n)
		}
		ok, err := e.ss.Exists(e.ctx, "d")
		e.ok(err, "Exists(d)")
		if ok {
			e.fatalf("session d exists after its broken record was removed")
		}
	}},
}
