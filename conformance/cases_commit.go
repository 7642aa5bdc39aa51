package conformance

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// SharedCommit: a driver that merges concurrent writes into one commit (group
// commit, a multi-row statement) must give each caller its own result. A write that
// fails (missing session, missing packet, existing session, invalid argument) takes
// nothing else down with it, and every call that returned nil is readable
// afterwards, checked write by write.

func runSharedCommit(t *testing.T, h Harness) { runCases(t, h, sharedCommitCases) }

// ackedWrite is one write that returned nil, to be found afterwards.
type ackedWrite struct {
	kind  string // "append", "batch", "sub", "retained", "state"
	id    string
	seq   uint64
	data  string
	topic string
}

// mixedWorker runs worker w's share of the mixed load: writes that must succeed
// and writes that must fail, interleaved, each checked for its own error. Writes
// that returned nil are recorded in acked; markers of failed writes in failed.
func (e *env) mixedWorker(w, n int, sessions []string, mu *sync.Mutex, acked *[]ackedWrite, failed *[]string) error {
	record := func(a ackedWrite) {
		mu.Lock()
		*acked = append(*acked, a)
		mu.Unlock()
	}
	for i := range n {
		id := sessions[(w+i)%len(sessions)]
		data := fmt.Sprintf("w%d/%d", w, i)
		p := pktData([]byte(data))
		switch i % 9 {
		case 0, 1:
			seq, err := e.ss.PacketAppend(e.ctx, id, cq, p)
			if err != nil {
				return fmt.Errorf("PacketAppend(%q) #%d of worker %d, sharing commits with failing writes: %w", id, i, w, err)
			}
			record(ackedWrite{kind: "append", id: id, seq: seq, data: data})
		case 2:
			_, err := e.ss.PacketAppend(e.ctx, fmt.Sprintf("missing-%d", w), cq, p)
			if !errors.Is(err, persistence.ErrNotFound) {
				return fmt.Errorf("PacketAppend to a missing session (worker %d): got %v, want ErrNotFound", w, errStr(err))
			}
		case 3:
			u := pktData([]byte("update of a missing packet " + data))
			u.Seq = 1<<62 + uint64(w*1000+i)
			err := e.ss.PacketUpdate(e.ctx, id, cq, u)
			if !errors.Is(err, persistence.ErrNotFound) {
				return fmt.Errorf("PacketUpdate of a missing seq (worker %d): got %v, want ErrNotFound", w, errStr(err))
			}
		case 4:
			var b persistence.Batch
			marker := "failed " + data
			b.PacketAppend(id, cq, pktData([]byte(marker))).SubscriptionStore(id, sub("failed/"+data, 1)).
				PacketAppend(fmt.Sprintf("missing-%d", w), cq, p)
			seqs, err := e.ss.Apply(e.ctx, &b)
			if !errors.Is(err, persistence.ErrNotFound) || len(seqs) != 0 {
				return fmt.Errorf("a batch ending with an append to a missing session (worker %d): got %d seqs, %v; want none, ErrNotFound",
					w, len(seqs), errStr(err))
			}
			mu.Lock()
			*failed = append(*failed, marker)
			mu.Unlock()
		case 5:
			err := e.ss.Create(e.ctx, id, e.base())
			if !errors.Is(err, persistence.ErrAlreadyExists) {
				return fmt.Errorf("second Create of the session %q (worker %d): got %v, want ErrAlreadyExists", id, w, errStr(err))
			}
		case 6:
			var b persistence.Batch
			b.PacketAppend(id, cq, p).SubscriptionStore(id, sub("ok/"+data, 1))
			seqs, err := e.ss.Apply(e.ctx, &b)
			if err != nil || len(seqs) != 1 {
				return fmt.Errorf("Apply(PacketAppend, SubscriptionStore) on %q (worker %d): got %d seqs, %v; want 1, nil", id, w, len(seqs), errStr(err))
			}
			record(ackedWrite{kind: "batch", id: id, seq: seqs[0], data: data})
		case 7:
			bad := pktData([]byte(data))
			bad.QoS = 3
			if _, err := e.ss.PacketAppend(e.ctx, id, cq, bad); !errors.Is(err, persistence.ErrInvalidArgument) {
				return fmt.Errorf("PacketAppend of a QoS 3 packet (worker %d): got %v, want ErrInvalidArgument", w, errStr(err))
			}
			topic := "r/" + data
			if err := e.rs.Put(e.ctx, topic, p); err != nil {
				return fmt.Errorf("Retained.Put(%q), sharing commits with failing writes: %w", topic, err)
			}
			record(ackedWrite{kind: "retained", topic: topic, data: data})
		case 8:
			if err := e.ss.SubscriptionsStore(e.ctx, id, sub("sub/"+data, 2)); err != nil {
				return fmt.Errorf("SubscriptionsStore(%q) (worker %d): %w", id, w, err)
			}
			record(ackedWrite{kind: "sub", id: id, data: "sub/" + data})
		}
	}
	return nil
}

// checkAcked checks, write by write, that every acknowledged write is readable and
// nothing of a failed one is, and that counts agree.
func (e *env) checkAcked(sessions []string, acked []ackedWrite, failed []string) {
	perQueue := map[string][]ackedWrite{}
	subs := map[string]map[string]bool{}
	retained := 0
	for _, a := range acked {
		switch a.kind {
		case "append", "batch":
			got, err := e.ss.PacketGet(e.ctx, a.id, cq, a.seq)
			if err != nil {
				e.fatalf("acknowledged %s of %q (seq %d) lost: PacketGet: %s; an acknowledged write must survive a commit shared with failing writes",
					a.kind, a.data, a.seq, errStr(err))
			}
			if string(got.Data) != a.data {
				e.fatalf("PacketGet(%q, seq %d) = data %q, want %q (the acknowledged write)", a.id, a.seq, got.Data, a.data)
			}
			perQueue[a.id] = append(perQueue[a.id], a)
			if a.kind == "batch" {
				if subs[a.id] == nil {
					subs[a.id] = map[string]bool{}
				}
				subs[a.id]["ok/"+a.data] = true
			}
		case "sub":
			if subs[a.id] == nil {
				subs[a.id] = map[string]bool{}
			}
			subs[a.id][a.data] = true
		case "retained":
			got, err := e.rs.Get(e.ctx, a.topic)
			if err != nil || string(got.Data) != a.data {
				e.fatalf("acknowledged Retained.Put(%q) lost: Get: %s; an acknowledged write must survive a commit shared with failing writes",
					a.topic, errStr(err))
			}
			retained++
		}
	}
	for _, id := range sessions {
		q := e.read(id, cq)
		want := perQueue[id]
		slices.SortFunc(want, func(a, b ackedWrite) int { return cmpU64(a.seq, b.seq) })
		if len(q) != len(want) {
			e.fatalf("queue (%q, %s) holds %d packets, but %d appends to it were acknowledged: a failed write's packet is visible, or an acknowledged one is lost",
				id, cq, len(q), len(want))
		}
		for i, p := range q {
			if p.Seq != want[i].seq || string(p.Data) != want[i].data {
				e.fatalf("queue (%q, %s) packet #%d is seq %d %q, want seq %d %q", id, cq, i, p.Seq, p.Data, want[i].seq, want[i].data)
			}
		}
		n, err := e.ss.PacketCount(e.ctx, id, cq)
		e.ok(err, "PacketCount(%q)", id)
		if n != uint64(len(want)) {
			e.fatalf("PacketCount(%q, %s) = %d, want %d acknowledged appends", id, cq, n, len(want))
		}
		got, err := e.ss.SubscriptionsLoad(e.ctx, id)
		e.ok(err, "SubscriptionsLoad(%q)", id)
		for _, s := range got {
			if !subs[id][s.Filter] {
				e.fatalf("SubscriptionsLoad(%q) has %q, which no acknowledged write stored (part of a failed batch?)", id, s.Filter)
			}
		}
		if len(got) != len(subs[id]) {
			e.fatalf("SubscriptionsLoad(%q) has %d subscriptions, want the %d acknowledged ones", id, len(got), len(subs[id]))
		}
	}
	for _, m := range failed {
		for _, id := range sessions {
			for _, p := range e.read(id, cq) {
				if string(p.Data) == m {
					e.fatalf("packet %q of a failed batch is visible in %q: a failed batch must write nothing", m, id)
				}
			}
		}
	}
	n, err := e.rs.Count(e.ctx)
	e.ok(err, "Retained.Count")
	if n != uint64(retained) {
		e.fatalf("Retained.Count = %d, want %d acknowledged puts", n, retained)
	}
	c, err := e.ss.Count(e.ctx)
	e.ok(err, "Count")
	if c != uint64(len(sessions)) {
		e.fatalf("Count = %d, want %d: a failed write created or removed a session", c, len(sessions))
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var sharedCommitCases = []tcase{
	{"AckedWritesSurviveFailingNeighbours", func(e *env) {
		workers, n := 16, 54
		if testing.Short() {
			workers, n = 8, 36
		}
		sessions := []string{"s0", "s1", "s2"}
		e.create(sessions...)
		var (
			mu     sync.Mutex
			acked  []ackedWrite
			failed []string
		)
		e.parallel(workers, func(w int) error { return e.mixedWorker(w, n, sessions, &mu, &acked, &failed) })
		e.checkAcked(sessions, acked, failed)
	}},
	{"AckedWritesSurviveFailingNeighboursOneSession", func(e *env) {
		// Everything on one session: failing writes share a queue with the
		// acknowledged ones.
		workers, n := 12, 45
		if testing.Short() {
			workers, n = 6, 27
		}
		e.create("s")
		var (
			mu     sync.Mutex
			acked  []ackedWrite
			failed []string
		)
		e.parallel(workers, func(w int) error { return e.mixedWorker(w, n, []string{"s"}, &mu, &acked, &failed) })
		e.checkAcked([]string{"s"}, acked, failed)
	}},
	{"FailedCreateKeepsExistingSession", func(e *env) {
		// Round after round, concurrent Creates of one new id: exactly one
		// succeeds, the others fail with ErrAlreadyExists, and the session keeps
		// what every worker appended after its Create returned.
		const workers, rounds = 8, 10
		for r := range rounds {
			id := fmt.Sprintf("one-%d", r)
			wins := make([]bool, workers)
			e.parallel(workers, func(w int) error {
				b := persistence.SessionBase{CreatedAt: caseEpoch.Add(1), ProtocolVersion: uint8(3 + w%3)}
				switch err := e.ss.Create(e.ctx, id, b); {
				case err == nil:
					wins[w] = true
				case errors.Is(err, persistence.ErrAlreadyExists):
				default:
					return fmt.Errorf("Create(%q) by worker %d: %w", id, w, err)
				}
				_, err := e.ss.PacketAppend(e.ctx, id, cq, workerPkt(w, 0))
				return err
			})
			won := 0
			for _, w := range wins {
				if w {
					won++
				}
			}
			if won != 1 {
				e.fatalf("%d concurrent Creates of %q succeeded, want exactly 1 (the others: ErrAlreadyExists)", won, id)
			}
			e.checkPerWorkerFIFOSet(e.read(id, cq), workers)
		}
	}},
}

// checkPerWorkerFIFOSet checks that got holds exactly packet 0 of each worker.
func (e *env) checkPerWorkerFIFOSet(got []*persistence.PersistedPacket, workers int) {
	if len(got) != workers {
		e.fatalf("queue holds %d packets, want the %d acknowledged appends", len(got), workers)
	}
	seen := map[string]bool{}
	for _, p := range got {
		seen[string(p.Data)] = true
	}
	for w := range workers {
		if !seen[fmt.Sprintf("w%d/0", w)] {
			e.fatalf("worker %d's acknowledged append is missing", w)
		}
	}
}
