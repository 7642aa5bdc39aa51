package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// Concurrent writers whose operations share group commits each get their own
// outcome: appends to missing sessions fail alone, a statement that fails in SQL
// (a CHECK constraint added for the test) makes only its own caller fail, and every
// append that returned nil is stored, in per-session order.
func TestGroupCommitOutcomes(t *testing.T) {
	p := openDSN(t, pgtest.DSN(t))
	ctx := testCtx(t, 2*time.Minute)
	ss, rs := p.Sessions(), p.Retained()
	if _, err := postgres.Pool(p).Exec(ctx, `ALTER TABLE mqtt_retained ADD CONSTRAINT test_refuses_bad CHECK (topic <> '\x626164'::bytea)`); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 64, 30
	for w := 0; w < writers; w += 2 { // odd sessions are never created
		if err := ss.Create(ctx, fmt.Sprintf("s%02d", w), persistence.SessionBase{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	seqs := make([][]uint64, writers)
	for w := range writers {
		id := fmt.Sprintf("s%02d", w)
		exists := w%2 == 0
		wg.Go(func() {
			fail := func(format string, args ...any) { errs <- fmt.Errorf(id+": "+format, args...) }
			for i := range rounds {
				seq, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte{byte(w), byte(i)}})
				switch {
				case exists && err != nil:
					fail("append %d: %v", i, err)
					return
				case !exists && !errors.Is(err, persistence.ErrNotFound):
					fail("append to a missing session = %d, %v; want ErrNotFound", seq, err)
					return
				}
				if exists {
					seqs[w] = append(seqs[w], seq)
				}
				err = ss.Create(ctx, id, persistence.SessionBase{})
				if want := persistence.ErrAlreadyExists; exists && !errors.Is(err, want) {
					fail("Create of an existing session = %v", err)
					return
				}
				if !exists {
					if err != nil {
						fail("Create = %v", err)
						return
					}
					if err := ss.Delete(ctx, id); err != nil {
						fail("Delete = %v", err)
						return
					}
				}
				topic := fmt.Sprintf("t/%s/%d", id, i)
				if w%16 == 1 {
					topic = "bad"
				}
				err = rs.Put(ctx, topic, &persistence.PersistedPacket{Data: []byte(topic)})
				if (topic == "bad") != (err != nil) {
					fail("Put(%q) = %v", topic, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if !checkQueues(t, errs, ss, seqs, 2) {
		return
	}
	n, err := rs.Count(ctx)
	if want := uint64(writers-writers/16) * rounds; err != nil || n != want {
		t.Fatalf("retained Count = %d, %v; want %d", n, err, want)
	}
}

// Concurrent fenced Applies of packet writes (a broker's fan-outs, moves in
// flight and acknowledgements in cluster mode), merged by the group committer into
// one statement, each get their own outcome: those fenced with a replaced
// ownership get ErrFenced and write nothing, the others write everything, their
// sequence numbers in order, whatever their neighbours in the group did.
func TestGroupFencedPacketWrites(t *testing.T) {
	obs := &commitObserver{}
	p := openDSN(t, pgtest.DSN(t), persistence.WithObserver(obs))
	ctx := testCtx(t, 2*time.Minute)
	ss := p.Sessions()
	for _, n := range []string{"n1", "n2"} {
		if _, err := p.Nodes().Renew(ctx, n, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	const writers, rounds = 32, 20
	owns := make([]persistence.Ownership, writers)
	for w := range writers {
		id := fmt.Sprintf("s%02d", w)
		if err := ss.Create(ctx, id, persistence.SessionBase{}); err != nil {
			t.Fatal(err)
		}
		o, err := ss.Claim(ctx, id, "n1")
		if err != nil {
			t.Fatal(err)
		}
		owns[w] = o
		if w%2 == 1 { // odd sessions were taken over: n1's fence is stale
			if _, err := ss.Takeover(ctx, id, "n2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	seqs := make([][]uint64, writers)
	for w := range writers {
		id := fmt.Sprintf("s%02d", w)
		wg.Go(func() {
			var prev []uint64 // the previous round's appends, deleted by this one
			for i := range rounds {
				var b persistence.Batch
				b.Fence(owns[w])
				for _, seq := range prev {
					b.PacketDelete(id, persistence.ClassQoS12, seq)
				}
				b.PacketAppend(id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte{byte(w), byte(i), 0}})
				b.PacketAppend(id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte{byte(w), byte(i), 1}})
				got, err := ss.Apply(ctx, &b)
				switch {
				case w%2 == 1 && !errors.Is(err, persistence.ErrFenced):
					errs <- fmt.Errorf("%s: stale fence: Apply = %v, %v; want ErrFenced", id, got, err)
					return
				case w%2 == 1:
					continue
				case err != nil || len(got) != 2 || got[0] >= got[1]:
					errs <- fmt.Errorf("%s: round %d: Apply = %v, %v", id, i, got, err)
					return
				}
				prev = got
				seqs[w] = got
			}
		})
	}
	wg.Wait()
	if !checkQueues(t, errs, ss, seqs, 1) {
		return
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	most := 0
	for _, c := range obs.commits {
		most = max(most, c.Calls)
	}
	if most < 2 {
		t.Errorf("no commit carried more than one Apply (%d commits): nothing was merged", len(obs.commits))
	}
}

// checkQueues reports the writers' errors, closing errs, then checks that the
// ClassQoS12 queue of every step-th session sNN holds exactly seqs[NN], in order.
// It reports whether the test goes on.
func checkQueues(t *testing.T, errs chan error, ss *persistence.Sessions, seqs [][]uint64, step int) bool {
	t.Helper()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return false
	}
	ctx := testCtx(t, time.Minute)
	for w := 0; w < len(seqs); w += step {
		id := fmt.Sprintf("s%02d", w)
		var got []uint64
		if err := ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
			got = append(got, pk.Seq)
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(seqs[w]) {
			t.Fatalf("%s: stored seqs %v, want %v (what the writes returned)", id, got, seqs[w])
		}
	}
	return true
}
