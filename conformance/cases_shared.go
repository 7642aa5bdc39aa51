package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Shared: several providers (brokers) on one store, through Harness.Shared. Node
// leases, session claims (exactly one of concurrent claims wins), takeover, lease
// expiry on the case's fake clock, fenced writes refused by the store with
// ErrFenced and nothing of them written, and nothing acknowledged lost across a
// takeover. A driver that cannot be shared (Harness.Shared nil) must answer every
// shared-store call with ErrNotSupported.

// leaseTTL is the lease the cases renew; only the fake clock moves past it.
const leaseTTL = time.Minute

func runShared(t *testing.T, h Harness) {
	t.Run("Declared", func(t *testing.T) {
		runCase(t, h, func(e *env) {
			if got, want := e.p.Shared(), h.Shared != nil; got != want {
				e.fatalf("Store.Shared() = %v, but the harness's Shared hook is set: %v; "+
					"a driver whose Conn implements driver.Sharer must run the Shared cases, and only such a driver may", got, want)
			}
		})
	})
	t.Run("NotSupported", func(t *testing.T) {
		if h.Shared != nil {
			t.Skip("not applicable: the driver can be shared (Harness.Shared is set)")
		}
		runCase(t, h, notSupportedCase)
	})
	for _, c := range sharedCases {
		t.Run(c.name, func(t *testing.T) {
			if h.Shared == nil {
				t.Skip("not applicable: the driver cannot be shared (Harness.Shared is nil)")
			}
			runCase(t, h, c.run)
		})
	}
}

// peer opens another provider on the case's store through Harness.Shared.
func (e *env) peer() *persistence.Store {
	var p *persistence.Store
	e.onMain(func() { p = e.h.Shared(e.h.bounded(e.t), e.p, persistence.WithClock(e.clock)) })
	if p == nil {
		e.fatalf("Harness.Shared returned a nil store")
	}
	if !p.Shared() {
		e.fatalf("a store opened by Harness.Shared says Shared() = false")
	}
	return p
}

// renew renews node's lease on p for leaseTTL and checks what it returns.
func (e *env) renew(p *persistence.Store, node string) persistence.Lease {
	l, err := p.Nodes().Renew(e.ctx, node, leaseTTL)
	e.ok(err, "Nodes.Renew(%q)", node)
	if want := e.clock.Now().Add(leaseTTL); l.Node != node || !l.Expires.Equal(want) {
		e.fatalf("Nodes.Renew(%q, %s) = {%q, %s}, want {%q, %s}", node, leaseTTL, l.Node, fmtTime(l.Expires), node, fmtTime(want))
	}
	return l
}

// claim claims id for node on p and checks the ownership returned.
func (e *env) claim(p *persistence.Store, id, node string) persistence.Ownership {
	o, err := p.Sessions().Claim(e.ctx, id, node)
	e.ok(err, "Claim(%q, %q)", id, node)
	e.checkOwnership(o, id, node, "Claim")
	return o
}

func (e *env) takeover(p *persistence.Store, id, node string) persistence.Ownership {
	o, err := p.Sessions().Takeover(e.ctx, id, node)
	e.ok(err, "Takeover(%q, %q)", id, node)
	e.checkOwnership(o, id, node, "Takeover")
	return o
}

func (e *env) checkOwnership(o persistence.Ownership, id, node, what string) {
	if o.ID != id || o.Node != node || o.Epoch == 0 {
		e.fatalf("%s(%q, %q) = %+v, want that session and node and a non-zero epoch", what, id, node, o)
	}
}

// owner checks that p reports want as id's ownership.
func (e *env) owner(p *persistence.Store, id string, want persistence.Ownership) {
	got, err := p.Sessions().Owner(e.ctx, id)
	e.ok(err, "Owner(%q)", id)
	if got != want {
		e.fatalf("Owner(%q) = %+v, want %+v", id, got, want)
	}
}

// fencedAppend appends pkt(i) to (o.ID, ClassQoS12) on p in a batch fenced with o.
func (e *env) fencedAppend(p *persistence.Store, o persistence.Ownership, i int) (uint64, error) {
	var b persistence.Batch
	b.Fence(o).PacketAppend(o.ID, persistence.ClassQoS12, pkt(i))
	seqs, err := p.Sessions().Apply(e.ctx, &b)
	if err != nil {
		return 0, err
	}
	if len(seqs) != 1 {
		e.fatalf("a fenced Apply with one append returned %d sequence numbers", len(seqs))
	}
	return seqs[0], nil
}

// notSupportedCase: a store whose driver cannot be shared answers every
// shared-store call with ErrNotSupported, and a fenced batch writes nothing.
func notSupportedCase(e *env) {
	if e.p.Shared() {
		e.fatalf("Store.Shared() = true without a Harness.Shared hook")
	}
	e.create("s")
	before := e.snapshot()
	o := persistence.Ownership{ID: "s", Node: "n", Epoch: 1}
	calls := []struct {
		name string
		call func() error
	}{
		{"Nodes.Renew", func() error { _, err := e.p.Nodes().Renew(e.ctx, "n", leaseTTL); return err }},
		{"Nodes.Leave", func() error { return e.p.Nodes().Leave(e.ctx, "n") }},
		{"Nodes.ForEach", func() error { return e.p.Nodes().ForEach(e.ctx, func(persistence.Lease) error { return nil }) }},
		{"Claim", func() error { _, err := e.ss.Claim(e.ctx, "s", "n"); return err }},
		{"Takeover", func() error { _, err := e.ss.Takeover(e.ctx, "s", "n"); return err }},
		{"Release", func() error { return e.ss.Release(e.ctx, o) }},
		{"Owner", func() error { _, err := e.ss.Owner(e.ctx, "s"); return err }},
		{"OwnedForEach", func() error {
			return e.ss.OwnedForEach(e.ctx, "n", func(persistence.Ownership) error { return nil })
		}},
		{"Listen", func() error { return e.p.Listen(e.ctx, "c", nil, func(string) {}) }},
		{"Apply of a batch with a notification", func() error {
			var b persistence.Batch
			_, err := e.ss.Apply(e.ctx, b.PacketAppend("s", persistence.ClassQoS0, pkt(1)).Notify("c", "p"))
			return err
		}},
		{"Apply of a fenced batch", func() error {
			var b persistence.Batch
			_, err := e.ss.Apply(e.ctx, b.PacketAppend("s", persistence.ClassQoS0, pkt(1)).Fence(o))
			return err
		}},
	}
	for _, c := range calls {
		e.is(c.call(), persistence.ErrNotSupported, "%s on a store that cannot be shared", c.name)
	}
	e.eq(diffSnap(e.snapshot(), before), "store after refused shared-store calls")
}

// sharedCases are the Shared cases, in the order they run.
var sharedCases = slices.Concat(sharedLeaseCases, sharedTakeoverCases, sharedNotifyCases)

// sharedLeaseCases are the Shared cases of leases and claims.
var sharedLeaseCases = []tcase{
	{"SameData", func(e *env) {
		b := e.peer()
		e.create("s")
		ok, err := b.Sessions().Exists(e.ctx, "s")
		e.ok(err, "Exists on the second provider")
		if !ok {
			e.fatalf("a session created through one provider does not exist for a second one on the same store")
		}
		seq, err := b.Sessions().PacketAppend(e.ctx, "s", persistence.ClassQoS12, pkt(1))
		e.ok(err, "PacketAppend on the second provider")
		p := pkt(1)
		p.Seq = seq
		e.queue("s", persistence.ClassQoS12, []*persistence.PersistedPacket{p})
	}},
	{"Leases", func(e *env) {
		b := e.peer()
		l1 := e.renew(e.p, "n1")
		e.clock.Advance(time.Second)
		l2 := e.renew(b, "n2")
		leases := func(p *persistence.Store) map[string]time.Time {
			m := map[string]time.Time{}
			e.ok(p.Nodes().ForEach(e.ctx, func(l persistence.Lease) error {
				if _, dup := m[l.Node]; dup {
					e.errorf("Nodes.ForEach visits node %q twice", l.Node)
				}
				m[l.Node] = l.Expires
				return nil
			}), "Nodes.ForEach")
			return m
		}
		check := func(p *persistence.Store, want ...persistence.Lease) {
			got := leases(p)
			if len(got) != len(want) {
				e.fatalf("Nodes.ForEach visits %d nodes (%v), want %d (%v)", len(got), got, len(want), want)
			}
			for _, l := range want {
				if exp, ok := got[l.Node]; !ok || !exp.Equal(l.Expires) {
					e.fatalf("Nodes.ForEach: node %q expires %s (listed: %v), want %s", l.Node, fmtTime(exp), ok, fmtTime(l.Expires))
				}
			}
		}
		check(e.p, l1, l2)
		check(b, l1, l2)
		e.clock.Advance(2 * leaseTTL) // expired leases are still listed
		check(b, l1, l2)
		l1 = e.renew(b, "n1") // renewing an expired lease is allowed, from any provider
		check(e.p, l1, l2)
		e.ok(e.p.Nodes().Leave(e.ctx, "n2"), "Nodes.Leave")
		e.ok(b.Nodes().Leave(e.ctx, "n2"), "Nodes.Leave of a node that left")
		e.ok(b.Nodes().Leave(e.ctx, "never"), "Nodes.Leave of a node never registered")
		check(b, l1)
		n := 0
		e.renew(e.p, "n3")
		e.ok(e.p.Nodes().ForEach(e.ctx, func(persistence.Lease) error { n++; return persistence.ErrStopIteration }), "Nodes.ForEach stopped")
		if n != 1 {
			e.fatalf("Nodes.ForEach called its callback %d times after ErrStopIteration", n)
		}
		e.is(e.p.Nodes().ForEach(e.ctx, func(persistence.Lease) error { return errCase }), errCase, "Nodes.ForEach whose callback fails")
	}},
	{"Guards", func(e *env) {
		s := e.ss
		e.is(func() error { _, err := e.p.Nodes().Renew(e.ctx, "", leaseTTL); return err }(), persistence.ErrInvalidArgument, "Renew of an empty node name")
		e.is(func() error { _, err := e.p.Nodes().Renew(e.ctx, "n", 0); return err }(), persistence.ErrInvalidArgument, "Renew for 0")
		e.is(func() error { _, err := e.p.Nodes().Renew(e.ctx, "n", -time.Second); return err }(), persistence.ErrInvalidArgument, "Renew for a negative duration")
		e.is(e.p.Nodes().Leave(e.ctx, ""), persistence.ErrInvalidArgument, "Leave of an empty node name")
		e.is(e.p.Nodes().ForEach(e.ctx, nil), persistence.ErrInvalidArgument, "Nodes.ForEach(nil)")
		e.is(func() error { _, err := s.Claim(e.ctx, "s", ""); return err }(), persistence.ErrInvalidArgument, "Claim by an empty node name")
		e.is(func() error { _, err := s.Takeover(e.ctx, "s", ""); return err }(), persistence.ErrInvalidArgument, "Takeover by an empty node name")
		e.is(s.Release(e.ctx, persistence.Ownership{ID: "s", Node: "n"}), persistence.ErrInvalidArgument, "Release with epoch 0")
		e.is(s.OwnedForEach(e.ctx, "n", nil), persistence.ErrInvalidArgument, "OwnedForEach(nil)")
		e.create("s")
		var b persistence.Batch
		_, err := s.Apply(e.ctx, b.Fence(persistence.Ownership{ID: "s", Node: "n"}).PacketAppend("s", persistence.ClassQoS0, pkt(1)))
		e.is(err, persistence.ErrInvalidArgument, "Apply fenced with epoch 0")
		e.queue("s", persistence.ClassQoS0, nil)
		done, cancel := context.WithCancel(e.ctx)
		cancel()
		_, err = s.Claim(done, "s", "n")
		e.is(err, context.Canceled, "Claim with a cancelled context")
		b2 := e.peer()
		e.ok(b2.Close(), "Close")
		_, err = b2.Nodes().Renew(e.ctx, "n", leaseTTL)
		e.is(err, persistence.ErrClosed, "Renew on a closed store")
		_, err = b2.Sessions().Claim(e.ctx, "s", "n")
		e.is(err, persistence.ErrClosed, "Claim on a closed store")
	}},
	{"ClaimNeedsLiveLease", func(e *env) {
		_, err := e.ss.Claim(e.ctx, "s", "n1")
		e.is(err, persistence.ErrLeaseExpired, "Claim by a node that never renewed a lease")
		_, err = e.ss.Takeover(e.ctx, "s", "n1")
		e.is(err, persistence.ErrLeaseExpired, "Takeover by a node that never renewed a lease")
		e.renew(e.p, "n1")
		e.clock.Advance(leaseTTL)
		_, err = e.ss.Claim(e.ctx, "s", "n1")
		e.is(err, persistence.ErrLeaseExpired, "Claim at the instant the claimer's lease ends")
		e.renew(e.p, "n1")
		e.claim(e.p, "s", "n1")
		e.ok(e.p.Nodes().Leave(e.ctx, "n1"), "Leave")
		_, err = e.ss.Claim(e.ctx, "t", "n1")
		e.is(err, persistence.ErrLeaseExpired, "Claim by a node that left")
	}},
	{"ClaimAndOwner", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		_, err := e.ss.Owner(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "Owner of a session nobody claimed")
		o := e.claim(e.p, "s", "n1")
		if ok, err := e.ss.Exists(e.ctx, "s"); err != nil || ok {
			e.fatalf("Claim created the session (Exists = %v, %v): a claim is not a session", ok, err)
		}
		e.owner(e.p, "s", o)
		e.owner(b, "s", o)
		_, err = b.Sessions().Claim(e.ctx, "s", "n2")
		e.is(err, persistence.ErrOwned, "Claim of a session a live node owns")
		e.owner(b, "s", o)
		// The owner claiming again gets a new epoch; its old one is fenced.
		o2 := e.claim(b, "s", "n1")
		if o2.Epoch <= o.Epoch {
			e.fatalf("a second claim got epoch %d, not above the first's %d", o2.Epoch, o.Epoch)
		}
		e.owner(e.p, "s", o2)
		e.create("s")
		_, err = e.fencedAppend(e.p, o, 1)
		e.is(err, persistence.ErrFenced, "Apply fenced with the epoch a later claim by the same node replaced")
		_, err = e.fencedAppend(b, o2, 2)
		e.ok(err, "Apply fenced with the current epoch")
		// Arbitrary bytes as ids and node names.
		id, node := "a\x00b\xff/+#", "node\x00\xfe"
		e.renew(b, node)
		o3 := e.claim(b, id, node)
		e.owner(e.p, id, o3)
		if o3.Epoch == o2.Epoch || o3.Epoch == o.Epoch {
			e.fatalf("claims of two sessions got the same epoch %d", o3.Epoch)
		}
	}},
	{"ConcurrentClaims", func(e *env) {
		ps := []*persistence.Store{e.p, e.peer(), e.peer()}
		nodes := []string{"n0", "n1", "n2"}
		for i, p := range ps {
			e.renew(p, nodes[i])
		}
		const sessions = 16
		type result struct {
			o   persistence.Ownership
			err error
		}
		run := func(takeover bool) [][]result {
			res := make([][]result, sessions)
			for i := range res {
				res[i] = make([]result, len(ps))
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for k, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range sessions {
						id := fmt.Sprintf("s%d", i)
						if takeover {
							id = fmt.Sprintf("t%d", i)
						}
						var r result
						if takeover {
							r.o, r.err = p.Sessions().Takeover(e.ctx, id, nodes[k])
						} else {
							r.o, r.err = p.Sessions().Claim(e.ctx, id, nodes[k])
						}
						res[i][k] = r
					}
				}()
			}
			close(start)
			wg.Wait()
			return res
		}
		for i, rs := range run(false) {
			id := fmt.Sprintf("s%d", i)
			var won []persistence.Ownership
			for k, r := range rs {
				switch {
				case r.err == nil:
					e.checkOwnership(r.o, id, nodes[k], "Claim")
					won = append(won, r.o)
				case !errors.Is(r.err, persistence.ErrOwned):
					e.fatalf("concurrent Claim(%q, %q): %s, want nil or ErrOwned", id, nodes[k], errStr(r.err))
				}
			}
			if len(won) != 1 {
				e.fatalf("%d of %d concurrent claims of %q by live nodes succeeded (%+v), want exactly one", len(won), len(ps), id, won)
			}
			for _, p := range ps {
				e.owner(p, id, won[0])
			}
		}
		for i, rs := range run(true) {
			id := fmt.Sprintf("t%d", i)
			var last persistence.Ownership
			epochs := map[uint64]bool{}
			for k, r := range rs {
				e.ok(r.err, "concurrent Takeover(%q, %q)", id, nodes[k])
				e.checkOwnership(r.o, id, nodes[k], "Takeover")
				if epochs[r.o.Epoch] {
					e.fatalf("two concurrent takeovers of %q got epoch %d", id, r.o.Epoch)
				}
				epochs[r.o.Epoch] = true
				if r.o.Epoch > last.Epoch {
					last = r.o
				}
			}
			// Every takeover succeeded; the one that committed last holds the session,
			// and its epoch is the greatest.
			e.owner(e.p, id, last)
		}
	}},
}
