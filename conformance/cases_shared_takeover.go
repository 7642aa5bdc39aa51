package conformance

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mqttstore/mqttstore/persistence"
)

// sharedTakeoverCases are the Shared cases of takeover and fencing: takeover,
// fenced batches, lease expiry, release, epochs, and nothing lost across a takeover.
var sharedTakeoverCases = []tcase{
	{"Takeover", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		seq1, err := e.fencedAppend(e.p, o1, 1)
		e.ok(err, "fenced append by the owner")
		o2 := e.takeover(b, "s", "n2")
		if o2.Epoch <= o1.Epoch {
			e.fatalf("Takeover got epoch %d, not above the previous owner's %d", o2.Epoch, o1.Epoch)
		}
		e.owner(e.p, "s", o2)
		_, err = e.fencedAppend(e.p, o1, 2)
		e.is(err, persistence.ErrFenced, "fenced append by the node that lost the session to a takeover")
		seq3, err := e.fencedAppend(b, o2, 3)
		e.ok(err, "fenced append by the new owner")
		p1, p3 := pkt(1), pkt(3)
		p1.Seq, p3.Seq = seq1, seq3
		e.queue("s", persistence.ClassQoS12, []*persistence.PersistedPacket{p1, p3})
		e.is(e.ss.Release(e.ctx, o1), persistence.ErrFenced, "Release by the node that lost the session")
		e.owner(b, "s", o2)
		// Takeover back.
		o3 := e.takeover(e.p, "s", "n1")
		_, err = e.fencedAppend(b, o2, 4)
		e.is(err, persistence.ErrFenced, "fenced append after the session was taken back")
		_, err = e.fencedAppend(e.p, o3, 5)
		e.ok(err, "fenced append after taking the session back")
	}},
	{"FencedBatchAtomic", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s1", "n1")
		stale := e.claim(e.p, "s2", "n1")
		e.create("s1", "s2", "u")
		e.takeover(b, "s2", "n2")
		before := e.snapshot()
		for _, order := range []string{"fences first", "fences last", "stale fence only"} {
			var bt persistence.Batch
			if order == "fences first" {
				bt.Fence(o1).Fence(stale)
			}
			if order == "stale fence only" {
				bt.Fence(stale)
			}
			bt.PacketAppend("s1", persistence.ClassQoS12, pkt(1)).
				StateStore("s2", state(1)).
				SubscriptionStore("u", sub("a/b", 1)).
				PacketAppend("s2", persistence.ClassUnAck, pkt(2)).
				Delete("u")
			if order == "fences last" {
				bt.Fence(o1).Fence(stale)
			}
			_, err := e.ss.Apply(e.ctx, &bt)
			e.is(err, persistence.ErrFenced, "Apply of a batch with a stale fence (%s)", order)
			e.eq(diffSnap(e.snapshot(), before), "store after a fenced batch was refused (%s)", order)
		}
		// Writes without a fence are not checked: any node may queue a message
		// for a session another node owns.
		var bt persistence.Batch
		seqs, err := e.ss.Apply(e.ctx, bt.Fence(o1).PacketAppend("s1", persistence.ClassQoS12, pkt(1)).PacketAppend("s2", persistence.ClassQoS12, pkt(2)))
		e.ok(err, "Apply fenced for s1 that also appends to s2, owned by another node, unfenced")
		if len(seqs) != 2 {
			e.fatalf("Apply returned %d sequence numbers for 2 appends", len(seqs))
		}
		// A batch holding only a fence writes nothing and reports the fence.
		var only persistence.Batch
		_, err = e.ss.Apply(e.ctx, only.Fence(o1))
		e.ok(err, "Apply of a batch holding only a current fence")
		only.Reset()
		_, err = e.ss.Apply(e.ctx, only.Fence(stale))
		e.is(err, persistence.ErrFenced, "Apply of a batch holding only a stale fence")
	}},
	{"LeaseExpiry", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		seq1, err := e.fencedAppend(e.p, o1, 1)
		e.ok(err, "fenced append")
		e.clock.Advance(leaseTTL / 2)
		e.renew(b, "n2")
		_, err = b.Sessions().Claim(e.ctx, "s", "n2")
		e.is(err, persistence.ErrOwned, "Claim while the owner's lease is live")
		e.clock.Advance(leaseTTL / 2) // n1's lease ends now; n2's is live
		o2 := e.claim(b, "s", "n2")
		if o2.Epoch <= o1.Epoch {
			e.fatalf("claim after the lease expired got epoch %d, not above %d", o2.Epoch, o1.Epoch)
		}
		_, err = e.fencedAppend(e.p, o1, 2)
		e.is(err, persistence.ErrFenced, "fenced append by the node whose lease expired and whose session was claimed")
		// The node comes back: its lease is live again, but the session stays claimed.
		e.renew(e.p, "n1")
		_, err = e.ss.Claim(e.ctx, "s", "n1")
		e.is(err, persistence.ErrOwned, "Claim by the returning node of the session claimed from it")
		_, err = e.fencedAppend(e.p, o1, 3)
		e.is(err, persistence.ErrFenced, "fenced append by the returning node with its old epoch")
		p1 := pkt(1)
		p1.Seq = seq1
		e.queue("s", persistence.ClassQoS12, []*persistence.PersistedPacket{p1})
		// A lease that expired with nobody claiming its sessions: they are still
		// its own, under the same epoch.
		o3 := e.claim(e.p, "t", "n1")
		e.create("t")
		e.clock.Advance(2 * leaseTTL)
		_, err = e.fencedAppend(e.p, o3, 4)
		e.ok(err, "fenced append to an unclaimed session by a node whose lease expired")
		e.owner(b, "t", o3)
	}},
	{"LeaveMakesClaimable", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s", "n1")
		e.ok(e.p.Nodes().Leave(e.ctx, "n1"), "Leave")
		o2 := e.claim(b, "s", "n2")
		if o2.Epoch <= o1.Epoch {
			e.fatalf("claim after the owner left got epoch %d, not above %d", o2.Epoch, o1.Epoch)
		}
		e.create("s")
		_, err := e.fencedAppend(e.p, o1, 1)
		e.is(err, persistence.ErrFenced, "fenced append by the node that left")
	}},
	{"Release", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		e.ok(e.ss.Release(e.ctx, o1), "Release")
		_, err := b.Sessions().Owner(e.ctx, "s")
		e.is(err, persistence.ErrNotFound, "Owner of a released session")
		_, err = e.fencedAppend(e.p, o1, 1)
		e.is(err, persistence.ErrFenced, "fenced append with a released ownership")
		e.is(e.ss.Release(e.ctx, o1), persistence.ErrFenced, "second Release")
		o2 := e.claim(b, "s", "n2") // no takeover needed: nobody owns it
		if o2.Epoch <= o1.Epoch {
			e.fatalf("claim after a release got epoch %d, not above the released %d", o2.Epoch, o1.Epoch)
		}
		e.is(e.ss.Release(e.ctx, persistence.Ownership{ID: "s", Node: "n1", Epoch: o2.Epoch}), persistence.ErrFenced,
			"Release naming the current epoch but another node")
		e.owner(e.p, "s", o2)
		e.queue("s", persistence.ClassQoS12, nil)
	}},
	{"EpochsSurviveDelete", func(e *env) {
		e.renew(e.p, "n1")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		// A clean start under one claim: Delete then Create, fenced.
		var bt persistence.Batch
		_, err := e.ss.Apply(e.ctx, bt.Fence(o1).Delete("s").Create("s", e.base()))
		e.ok(err, "fenced Delete and Create")
		e.owner(e.p, "s", o1)
		e.ok(e.ss.Delete(e.ctx, "s"), "Delete")
		e.owner(e.p, "s", o1) // a claim outlives its session
		e.ok(e.ss.Release(e.ctx, o1), "Release")
		o2 := e.claim(e.p, "s", "n1")
		if o2.Epoch <= o1.Epoch {
			e.fatalf("a claim after delete and release got epoch %d, not above %d", o2.Epoch, o1.Epoch)
		}
		e.create("s")
		_, err = e.fencedAppend(e.p, o1, 1)
		e.is(err, persistence.ErrFenced, "fenced append with the epoch of a claim before the session was deleted")
	}},
	{"OwnedForEach", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		// More than a few pages of any driver's.
		const n = 600
		want := map[string]persistence.Ownership{}
		for i := range n {
			id := fmt.Sprintf("s%03d\x00", i)
			want[id] = e.claim(e.p, id, "n1")
		}
		other := e.claim(b, "t", "n2")
		owned := func(p *persistence.Store, node string) map[string]persistence.Ownership {
			got := map[string]persistence.Ownership{}
			e.ok(p.Sessions().OwnedForEach(e.ctx, node, func(o persistence.Ownership) error {
				if _, dup := got[o.ID]; dup {
					e.errorf("OwnedForEach(%q) visits %q twice", node, o.ID)
				}
				got[o.ID] = o
				return nil
			}), "OwnedForEach(%q)", node)
			return got
		}
		same := func(got, want map[string]persistence.Ownership, what string) {
			if len(got) != len(want) {
				e.fatalf("%s visits %d sessions, want %d", what, len(got), len(want))
			}
			for id, o := range want {
				if got[id] != o {
					e.fatalf("%s: session %q: %+v, want %+v", what, id, got[id], o)
				}
			}
		}
		same(owned(b, "n1"), want, "OwnedForEach(n1)")
		same(owned(e.p, "n2"), map[string]persistence.Ownership{"t": other}, "OwnedForEach(n2)")
		same(owned(e.p, "nobody"), nil, "OwnedForEach of a node without sessions")
		moved := e.takeover(b, "s007\x00", "n2")
		delete(want, "s007\x00")
		same(owned(e.p, "n1"), want, "OwnedForEach(n1) after a takeover")
		same(owned(e.p, "n2"), map[string]persistence.Ownership{"t": other, "s007\x00": moved}, "OwnedForEach(n2) after a takeover")
		calls := 0
		e.ok(e.ss.OwnedForEach(e.ctx, "n1", func(persistence.Ownership) error { calls++; return persistence.ErrStopIteration }), "OwnedForEach stopped")
		if calls != 1 {
			e.fatalf("OwnedForEach called its callback %d times after ErrStopIteration", calls)
		}
		e.is(e.ss.OwnedForEach(e.ctx, "n1", func(persistence.Ownership) error { return errCase }), errCase, "OwnedForEach whose callback fails")
		// The callback may call the store: release every session it visits.
		e.ok(e.ss.OwnedForEach(e.ctx, "n1", func(o persistence.Ownership) error { return e.ss.Release(e.ctx, o) }), "OwnedForEach releasing")
		same(owned(b, "n1"), nil, "OwnedForEach(n1) after releasing all")
	}},
	{"NothingLostAcrossTakeover", func(e *env) {
		// Writers of the owning node append, fenced, while another node takes the
		// session over: every append that succeeded is in the queue, no refused
		// one is, and every append that started after Takeover returned is refused.
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		const writers = 4
		var (
			taken    atomic.Bool
			mu       sync.Mutex
			acked    = map[uint64]int{}
			refused  int
			late     []string
			progress = make(chan struct{}, 1<<16)
			wg       sync.WaitGroup
			next     atomic.Int64
			werr     error
		)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e.ctx.Err() == nil {
					after := taken.Load()
					i := int(next.Add(1))
					seq, err := e.fencedAppend(e.p, o1, i)
					mu.Lock()
					switch {
					case err == nil:
						acked[seq] = i
						if after {
							late = append(late, fmt.Sprintf("append #%d (seq %d)", i, seq))
						}
					case errors.Is(err, persistence.ErrFenced):
						refused++
					default:
						if werr == nil {
							werr = fmt.Errorf("fenced append #%d: %w", i, err)
						}
					}
					mu.Unlock()
					if err != nil {
						return
					}
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}()
		}
		for range 20 {
			select {
			case <-progress:
			case <-e.ctx.Done():
				e.fatalf("the writers made no progress before the deadline")
			}
		}
		o2 := e.takeover(b, "s", "n2")
		taken.Store(true)
		// What the new owner reads right after the takeover is final: no write of
		// the old owner may commit after Takeover returned.
		atTakeover := make([]*persistence.PersistedPacket, 0, 64)
		e.ok(b.Sessions().PacketsForEach(e.ctx, "s", persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
			atTakeover = append(atTakeover, p)
			return false, nil
		}), "PacketsForEach by the new owner right after the takeover")
		wg.Wait()
		if werr != nil {
			e.fatalf("%v", werr)
		}
		if len(late) > 0 {
			e.fatalf("fenced appends that started after Takeover returned succeeded: %v", late)
		}
		if refused != writers {
			e.fatalf("%d appends were refused with ErrFenced, want one per writer (%d)", refused, writers)
		}
		// The new owner sees exactly the acknowledged appends, in seq order.
		var want []*persistence.PersistedPacket
		seqs := make([]uint64, 0, len(acked))
		for seq := range acked {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			p := pkt(acked[seq])
			p.Seq = seq
			want = append(want, p)
		}
		got := make([]*persistence.PersistedPacket, 0, len(want))
		e.ok(b.Sessions().PacketsForEach(e.ctx, "s", persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
			got = append(got, p)
			return false, nil
		}), "PacketsForEach by the new owner")
		e.eq(diffQueue(got, want), "queue after the takeover (%d acknowledged appends)", len(want))
		e.eq(diffQueue(atTakeover, want), "queue the new owner read right after Takeover returned, against the acknowledged appends: "+
			"a write of the old owner committed after the takeover (the fence must hold the ownership until the write commits)")
		_, err := e.fencedAppend(b, o2, 0)
		e.ok(err, "fenced append by the new owner")
	}},
	{"FencedNeighbours", func(e *env) {
		// Writers on four sessions of one node append, fenced, concurrently (a
		// driver may commit them together); one session is taken over. Its writer
		// is refused from then on; the others' writes keep succeeding, and every
		// queue holds exactly its acknowledged appends.
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		const sessions = 4
		owns := make([]persistence.Ownership, sessions)
		for i := range owns {
			id := fmt.Sprintf("s%d", i)
			owns[i] = e.claim(e.p, id, "n1")
			e.create(id)
		}
		var (
			taken    atomic.Bool
			mu       sync.Mutex
			acked    = make([][]*persistence.PersistedPacket, sessions)
			after    = make([]int, sessions) // acknowledged appends started after the takeover
			fencedAt = make([]bool, sessions)
			progress = make(chan struct{}, 1<<16)
			wg       sync.WaitGroup
			next     atomic.Int64
			werr     error
		)
		for w := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e.ctx.Err() == nil {
					late := taken.Load()
					mu.Lock()
					enough := late && after[w] >= 20
					mu.Unlock()
					if enough {
						return
					}
					i := int(next.Add(1))
					seq, err := e.fencedAppend(e.p, owns[w], i)
					mu.Lock()
					switch {
					case err == nil:
						p := pkt(i)
						p.Seq = seq
						acked[w] = append(acked[w], p)
						if late {
							after[w]++
						}
					case errors.Is(err, persistence.ErrFenced):
						fencedAt[w] = true
					default:
						if werr == nil {
							werr = fmt.Errorf("fenced append #%d to %q: %w", i, owns[w].ID, err)
						}
					}
					mu.Unlock()
					if err != nil {
						return
					}
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}()
		}
		for range 20 {
			select {
			case <-progress:
			case <-e.ctx.Done():
				e.fatalf("the writers made no progress before the deadline")
			}
		}
		e.takeover(b, "s0", "n2")
		taken.Store(true)
		wg.Wait()
		if werr != nil {
			e.fatalf("%v", werr)
		}
		if !fencedAt[0] || after[0] != 0 {
			e.fatalf("the writer of the session taken over: refused %v, %d appends started after the takeover succeeded; want refused, 0", fencedAt[0], after[0])
		}
		for w := 1; w < sessions; w++ {
			if fencedAt[w] {
				e.fatalf("the writer of %q, which nobody took over, was refused with ErrFenced", owns[w].ID)
			}
		}
		for w := range sessions { // each writer appended in order
			e.queue(owns[w].ID, persistence.ClassQoS12, acked[w])
		}
	}},
	{"Reopen", func(e *env) {
		if e.h.Reopen == nil {
			e.skipf("not applicable: the harness declares no Reopen")
		}
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		o1 := e.claim(e.p, "s", "n1")
		e.create("s")
		e.reopen(false)
		e.owner(e.p, "s", o1)
		e.owner(b, "s", o1)
		_, err := b.Sessions().Claim(e.ctx, "s", "n2")
		e.is(err, persistence.ErrOwned, "Claim after the owner's provider reopened, its lease live")
		_, err = e.fencedAppend(e.p, o1, 1)
		e.ok(err, "fenced append after reopening")
	}},
}
