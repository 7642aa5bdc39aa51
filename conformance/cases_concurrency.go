package conformance

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Concurrency: many goroutines on the same store. Run with -race.

func runConcurrency(t *testing.T, h Harness) { runCases(t, h, concurrencyCases) }

// parallel runs n workers and fails the case with the first error any returned.
// Workers must not call e's failing methods: they return errors instead.
func (e *env) parallel(n int, worker func(w int) error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Go(func() { errs[w] = worker(w) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.fatalf("concurrent workers: %v", err)
	}
}

// workerPkt is packet i of worker w: its Data names both.
func workerPkt(w, i int) *persistence.PersistedPacket {
	p := pkt(i)
	p.Data = fmt.Appendf(nil, "w%d/%d", w, i)
	return p
}

// checkPerWorkerFIFO checks that got holds n packets from each of workers, each
// worker's in the order it appended them, with unique increasing seqs.
func (e *env) checkPerWorkerFIFO(got []*persistence.PersistedPacket, workers, n int) {
	if len(got) != workers*n {
		e.fatalf("queue holds %d packets, want %d", len(got), workers*n)
	}
	next := make([]int, workers)
	for i, p := range got {
		if i > 0 && p.Seq <= got[i-1].Seq {
			e.fatalf("packet #%d: seq %d after %d", i, p.Seq, got[i-1].Seq)
		}
		var w, k int
		if _, err := fmt.Sscanf(string(p.Data), "w%d/%d", &w, &k); err != nil || w < 0 || w >= workers {
			e.fatalf("packet #%d has unexpected data %q", i, p.Data)
		}
		if k != next[w] {
			e.fatalf("worker %d's packet %d comes where its packet %d was expected: one publisher's order is lost [MQTT-4.6.0-5]", w, k, next[w])
		}
		next[w]++
	}
}

var concurrencyCases = []tcase{
	{"AppendSameSession", func(e *env) {
		const workers, n = 16, 60
		e.create("s")
		seqs := make([][]uint64, workers)
		e.parallel(workers, func(w int) error {
			for i := range n {
				seq, err := e.ss.PacketAppend(e.ctx, "s", cq, workerPkt(w, i))
				if err != nil {
					return err
				}
				seqs[w] = append(seqs[w], seq)
			}
			return nil
		})
		all := slices.Concat(seqs...)
		slices.Sort(all)
		if len(slices.Compact(all)) != workers*n {
			e.fatalf("concurrent appends were assigned duplicate sequence numbers")
		}
		e.checkPerWorkerFIFO(e.read("s", cq), workers, n)
	}},
	{"AppendDifferentSessions", func(e *env) {
		const workers, n = 16, 60
		for w := range workers {
			e.create(fmt.Sprintf("s%d", w))
		}
		e.parallel(workers, func(w int) error {
			id := fmt.Sprintf("s%d", w)
			for i := range n {
				if _, err := e.ss.PacketAppend(e.ctx, id, persistence.PacketClasses[i%4], workerPkt(0, i/4)); err != nil {
					return err
				}
			}
			return nil
		})
		for w := range workers {
			for _, c := range persistence.PacketClasses {
				e.checkPerWorkerFIFO(e.read(fmt.Sprintf("s%d", w), c), 1, n/4)
			}
		}
	}},
	{"AppendWithBatchesAndSingleCalls", func(e *env) {
		const workers, n = 8, 40
		e.create("s")
		e.parallel(workers, func(w int) error {
			for i := 0; i < n; i += 2 {
				if w%2 == 0 {
					var b persistence.Batch
					b.PacketAppend("s", cq, workerPkt(w, i)).PacketAppend("s", cq, workerPkt(w, i+1))
					if _, err := e.ss.Apply(e.ctx, &b); err != nil {
						return err
					}
					continue
				}
				for j := i; j < i+2; j++ {
					if _, err := e.ss.PacketAppend(e.ctx, "s", cq, workerPkt(w, j)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		e.checkPerWorkerFIFO(e.read("s", cq), workers, n)
	}},
	{"CreateDeleteRace", func(e *env) {
		const workers, rounds = 8, 40
		e.parallel(workers, func(w int) error {
			for i := range rounds {
				id := fmt.Sprintf("s%d", i%4)
				switch err := e.ss.Create(e.ctx, id, e.base()); {
				case err == nil, errors.Is(err, persistence.ErrAlreadyExists):
				default:
					return fmt.Errorf("Create(%q): %w", id, err)
				}
				if _, err := e.ss.PacketAppend(e.ctx, id, cq, pkt(i)); err != nil && !errors.Is(err, persistence.ErrNotFound) {
					return fmt.Errorf("PacketAppend(%q): %w", id, err)
				}
				if err := e.ss.SubscriptionsStore(e.ctx, id, sub("a", w)); err != nil && !errors.Is(err, persistence.ErrNotFound) {
					return fmt.Errorf("SubscriptionsStore(%q): %w", id, err)
				}
				if (i+w)%3 == 0 {
					if err := e.ss.Delete(e.ctx, id); err != nil {
						return fmt.Errorf("Delete(%q): %w", id, err)
					}
				}
			}
			return nil
		})
		// Whatever survived must be consistent: Count, LoadForEach and Exists agree,
		// and deleting everything leaves nothing.
		all := e.loadAll()
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != uint64(len(all)) {
			e.fatalf("Count = %d but LoadForEach visits %d sessions", n, len(all))
		}
		for id := range all {
			e.ok(e.ss.Delete(e.ctx, id), "Delete(%q)", id)
			e.checkGone(id)
		}
	}},
	{"SubscribeUnsubscribeSameFilter", func(e *env) {
		// aedes #469: the final state must be that of some serial order.
		const workers, rounds = 8, 50
		e.create("s")
		e.parallel(workers, func(w int) error {
			for i := range rounds {
				var err error
				if (w+i)%2 == 0 {
					err = e.ss.SubscriptionsStore(e.ctx, "s", sub("same/#", w))
				} else {
					err = e.ss.SubscriptionsDelete(e.ctx, "s", "same/#")
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		got, err := e.ss.SubscriptionsLoad(e.ctx, "s")
		e.ok(err, "SubscriptionsLoad")
		switch {
		case len(got) > 1:
			e.fatalf("%d subscriptions for one filter: %+v", len(got), got)
		case len(got) == 1:
			ok := false
			for w := range workers {
				ok = ok || got[0] == sub("same/#", w)
			}
			if !ok {
				e.fatalf("subscription %+v was never stored by any worker", got[0])
			}
		}
	}},
	{"DifferentFiltersSameSession", func(e *env) {
		// Round after round, workers subscribe to their own new filter and
		// unsubscribe from their previous one on one session, all at once: a
		// driver that rewrites the session's list read before another worker's
		// write loses that write. Checked after every round.
		const workers, rounds = 8, 12
		e.create("s")
		for r := range rounds {
			e.parallel(workers, func(w int) error {
				if err := e.ss.SubscriptionsStore(e.ctx, "s", sub(fmt.Sprintf("f/%d/%d", w, r), r)); err != nil {
					return err
				}
				if r > 0 {
					return e.ss.SubscriptionsDelete(e.ctx, "s", fmt.Sprintf("f/%d/%d", w, r-1))
				}
				return nil
			})
			var want []persistence.Subscription
			for w := range workers {
				want = append(want, sub(fmt.Sprintf("f/%d/%d", w, r), r))
			}
			e.subsSet("s", want...)
		}
	}},
	{"StateAndExpiryWithAppends", func(e *env) {
		// Round after round, a state, deadlines, a subscription and a packet are
		// written to one session at once: none of them is lost (no
		// read-modify-write of a session record that drops a concurrent update).
		// Checked after every round.
		const rounds = 16
		e.create("s")
		var q []*persistence.PersistedPacket
		var subs []persistence.Subscription
		for r := range rounds {
			x := persistence.SessionExpiry{ExpireAt: caseEpoch.Add(time.Duration(r+1) * time.Minute), WillAt: caseEpoch.Add(time.Duration(r+1) * time.Second)}
			var seq uint64
			e.parallel(4, func(w int) error {
				var err error
				switch w {
				case 0:
					// Started first and several writes, so that the state written
					// once in this round lands among them.
					for k := 0; k < 4 && err == nil; k++ {
						err = e.ss.ExpiryStore(e.ctx, "s", x)
					}
				case 1:
					seq, err = e.ss.PacketAppend(e.ctx, "s", cq, workerPkt(0, r))
				case 2:
					err = e.ss.StateStore(e.ctx, "s", state(r))
				case 3:
					err = e.ss.SubscriptionsStore(e.ctx, "s", sub(fmt.Sprintf("x/%d", r), r))
				}
				if err != nil {
					return fmt.Errorf("round %d, writer %d: %w", r, w, err)
				}
				return nil
			})
			p := workerPkt(0, r)
			p.Seq = seq
			q = append(q, p)
			subs = append(subs, sub(fmt.Sprintf("x/%d", r), r))
			e.queue("s", cq, q)
			st, err := e.ss.StateGet(e.ctx, "s")
			e.ok(err, "StateGet")
			e.eq(diffState(st, state(r)), "StateGet after round %d of concurrent writes (the state stored in that round was lost)", r)
			got, err := e.ss.ExpiryGet(e.ctx, "s")
			e.ok(err, "ExpiryGet")
			e.eq(diffExpiry(got, x), "ExpiryGet after round %d of concurrent writes (the deadlines stored in that round were lost)", r)
			e.subsSet("s", subs...)
		}
	}},
	{"IterateWhileWriting", func(e *env) {
		e.create("s")
		base := e.appendN("s", cq, 200)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var werr error
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.ss.PacketAppend(e.ctx, "s", cq, pkt(1000+i)); err != nil {
					werr = err
					return
				}
				if err := e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i%50), pkt(i)); err != nil {
					werr = err
					return
				}
			}
		})
		var ierr error
		for range 10 {
			var last uint64
			n := 0
			err := e.ss.PacketsForEach(e.ctx, "s", cq, func(p *persistence.PersistedPacket) (bool, error) {
				if p.Seq <= last {
					return false, fmt.Errorf("seq %d after %d during concurrent appends", p.Seq, last)
				}
				last = p.Seq
				n++
				return false, nil
			})
			if err == nil && n < len(base) {
				err = fmt.Errorf("iteration visited %d packets, fewer than the %d stored before it began", n, len(base))
			}
			if err == nil {
				err = e.rs.Load(e.ctx, func(*persistence.RetainedMessage) error { return nil })
			}
			if err == nil {
				_, err = e.ss.Count(e.ctx)
			}
			if err != nil {
				ierr = err
				break
			}
		}
		close(stop)
		wg.Wait()
		e.ok(werr, "concurrent writer")
		e.ok(ierr, "iteration concurrent with writes")
	}},
	{"ConcurrentAckers", func(e *env) {
		// Several goroutines ack the same queue through iteration deletes: each
		// packet ends up deleted, none is resurrected.
		e.create("s")
		e.appendN("s", persistence.ClassUnAck, 300)
		e.parallel(4, func(int) error {
			return e.ss.PacketsForEach(e.ctx, "s", persistence.ClassUnAck, func(*persistence.PersistedPacket) (bool, error) {
				return true, nil
			})
		})
		e.queue("s", persistence.ClassUnAck, nil)
	}},
	{"RetainedConcurrentPuts", func(e *env) {
		const workers, n = 10, 100
		e.parallel(workers, func(w int) error {
			for i := range n {
				if err := e.rs.Put(e.ctx, fmt.Sprintf("w/%d/%d", w, i), pkt(i)); err != nil {
					return err
				}
				if i%10 == 0 {
					if err := e.rs.Put(e.ctx, "shared", pkt(w)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		e.count(workers*n + 1)
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("w/3/%d", i))
		}
		e.matching([]string{"w/3/#"}, want...)
	}},
	{"ExpiryWhileIterating", func(e *env) {
		for i := range 50 {
			id := fmt.Sprintf("s%d", i)
			e.create(id)
			e.setExpiry(id, persistence.SessionExpiry{ExpireAt: e.at(-1)})
		}
		e.parallel(4, func(int) error {
			return e.ss.ExpiredForEach(e.ctx, e.clock.Now(), func(id string, _ persistence.SessionExpiry) error {
				return e.ss.Delete(e.ctx, id)
			})
		})
		n, err := e.ss.Count(e.ctx)
		e.ok(err, "Count")
		if n != 0 {
			e.fatalf("Count = %d after concurrent expiry, want 0", n)
		}
	}},
}
