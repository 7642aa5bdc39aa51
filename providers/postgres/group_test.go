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
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for w := 0; w < writers; w += 2 {
		id := fmt.Sprintf("s%02d", w)
		var got []uint64
		if err := ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
			got = append(got, pk.Seq)
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(seqs[w]) {
			t.Fatalf("%s: stored seqs %v, acknowledged %v", id, got, seqs[w])
		}
	}
	n, err := rs.Count(ctx)
	if want := uint64(writers-writers/16) * rounds; err != nil || n != want {
		t.Fatalf("retained Count = %d, %v; want %d", n, err, want)
	}
}
