package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
)

// With writers running, the server is stopped and started again: while it is down
// every call fails within its deadline; after the restart writes succeed again on
// the same provider (no reopen); every append that returned nil is stored.
func TestServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: restarts a container")
	}
	srv := pgtest.NewServer(t)
	p := openDSN(t, srv.DSN(t)+"&connect_timeout=2")
	ss := p.Sessions()
	ctx := testCtx(t, 3*time.Minute)

	const writers = 4
	const callTimeout = 2 * time.Second
	acked := make([][]uint64, writers)
	for w := range writers {
		if err := ss.Create(ctx, fmt.Sprintf("w%d", w), persistence.SessionBase{}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		stop               = make(chan struct{})
		wg                 sync.WaitGroup
		okCount, failCount atomic.Int64
		okAfter            atomic.Int64 // successes after the restart
		restarted          atomic.Bool
		slowMu             sync.Mutex
		slowest            time.Duration
		failDuringDown     atomic.Int64
		down               atomic.Bool
	)
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				start := time.Now()
				seq, err := ss.PacketAppend(cctx, id, persistence.ClassQoS12,
					&persistence.PersistedPacket{QoS: 1, Data: fmt.Appendf(nil, "%s-%d", id, i)})
				d := time.Since(start)
				cancel()
				slowMu.Lock()
				slowest = max(slowest, d)
				slowMu.Unlock()
				if err != nil {
					failCount.Add(1)
					if down.Load() {
						failDuringDown.Add(1)
					}
					time.Sleep(20 * time.Millisecond) // pace retries while the server is away
					continue
				}
				acked[w] = append(acked[w], seq)
				okCount.Add(1)
				if restarted.Load() {
					okAfter.Add(1)
				}
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitFor("writes before the stop", func() bool { return okCount.Load() >= 200 })
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	down.Store(true)
	before := failDuringDown.Load()
	waitFor("failures while the server is down", func() bool { return failDuringDown.Load() >= before+writers*3 })
	// A read fails too, within its deadline.
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	start := time.Now()
	if _, err := ss.Count(rctx); err == nil {
		t.Error("Count succeeded while the server was down")
	}
	cancel()
	if d := time.Since(start); d > callTimeout+time.Second {
		t.Errorf("Count took %v while the server was down, deadline %v", d, callTimeout)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	down.Store(false)
	restarted.Store(true)
	waitFor("writes after the restart", func() bool { return okAfter.Load() >= 200 })
	close(stop)
	wg.Wait()

	slowMu.Lock()
	defer slowMu.Unlock()
	t.Logf("%d appends acknowledged, %d failed (%d while down); slowest call %v", okCount.Load(), failCount.Load(), failDuringDown.Load(), slowest)
	if slowest > callTimeout+time.Second {
		t.Errorf("a call took %v, beyond its %v deadline", slowest, callTimeout)
	}
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		stored := map[uint64]bool{}
		if err := ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
			stored[pk.Seq] = true
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, seq := range acked[w] {
			if !stored[seq] {
				t.Fatalf("session %s: append %d returned nil but is not stored", id, seq)
			}
		}
	}
}
