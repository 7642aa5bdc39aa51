package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
)

// Tests that need "every request is now queued" use testing/synctest: Wait returns
// once every goroutine of the bubble is blocked, which is exactly that moment, with
// no sleeps and no polling. Tests of real parallelism run outside a bubble, under
// the race detector, and are bounded by waitOrFail.

// waitOrFail bounds a test that waits for goroutines: a committer that loses a
// request fails the test instead of hanging the binary.
func waitOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("requests still waiting after 30s: a request was lost or a commit hangs")
	}
}

// gate is a commit function whose first commit blocks until release is closed, so
// that a test can queue requests behind a slow commit. It records group sizes and
// committed values; only the committer's goroutine touches them, and tests read them
// after the requests returned (Do's return happens after its commit).
type gate struct {
	release   chan struct{}
	blocked   bool
	sizes     []int
	committed []int
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) commit(group []*groupcommit.Request[int]) {
	g.sizes = append(g.sizes, len(group))
	for _, r := range group {
		g.committed = append(g.committed, r.Value)
	}
	if !g.blocked {
		g.blocked = true
		<-g.release
	}
}

func TestEachRequestGetsItsOwnError(t *testing.T) {
	c := groupcommit.New(func(group []*groupcommit.Request[int]) {
		for _, r := range group {
			if r.Value%2 == 1 {
				r.Err = fmt.Errorf("request %d failed", r.Value)
			}
		}
	}, 0)
	defer c.Close()

	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.Do(t.Context(), i) })
	}
	waitOrFail(t, &wg)
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Errorf("request %d: got %v, want nil", i, err)
		}
		if want := fmt.Sprintf("request %d failed", i); i%2 == 1 && (err == nil || err.Error() != want) {
			t.Errorf("request %d: got %v, want %q", i, err, want)
		}
	}
}

type ctxKey struct{}

// TestConcurrentRequestsAreEachCommittedOnce runs 64 goroutines against one
// committer. The commit function deliberately keeps its bookkeeping without a lock:
// the committer promises one commit at a time, and the race detector checks it.
func TestConcurrentRequestsAreEachCommittedOnce(t *testing.T) {
	const goroutines, perGoroutine, maxGroup = 64, 100, 16
	seen := map[int]int{}
	var groups, maxSize int
	var inCommit atomic.Bool
	var violations atomic.Int32
	c := groupcommit.New(func(group []*groupcommit.Request[int]) {
		if !inCommit.CompareAndSwap(false, true) {
			violations.Add(1)
		}
		defer inCommit.Store(false)
		groups++
		maxSize = max(maxSize, len(group))
		for _, r := range group {
			seen[r.Value]++
			// The request carries its caller's context.
			if v, _ := r.Ctx.Value(ctxKey{}).(int); v != r.Value {
				r.Err = fmt.Errorf("request %d carries the context of %d", r.Value, v)
			}
		}
	}, maxGroup)

	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				v := g*perGoroutine + i
				if err := c.Do(context.WithValue(t.Context(), ctxKey{}, v), v); err != nil {
					t.Errorf("Do(%d): %v", v, err)
					failures.Add(1)
				}
			}
		})
	}
	waitOrFail(t, &wg)
	c.Close() // after Close returns, the committer's writes are visible here

	if n := violations.Load(); n != 0 {
		t.Errorf("%d commits overlapped another", n)
	}
	if len(seen) != goroutines*perGoroutine {
		t.Errorf("%d distinct values committed, want %d", len(seen), goroutines*perGoroutine)
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("value %d committed %d times", v, n)
		}
	}
	if maxSize > maxGroup || maxSize == 0 {
		t.Errorf("largest group %d, want 1..%d", maxSize, maxGroup)
	}
	t.Logf("%d requests in %d groups (largest %d)", goroutines*perGoroutine, groups, maxSize)
}

// While one commit is in progress, every request that arrives joins the next group:
// N requests queued behind a slow commit are committed together, in one group of N.
func TestGroupsCoalesceWhileCommitIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 100
		g := newGate()
		c := groupcommit.New(g.commit, 0)
		ctx := context.Background()

		results := make(chan error, n+1)
		go func() { results <- c.Do(ctx, -1) }()
		synctest.Wait() // the first request is inside the blocked commit
		for i := range n {
			go func() { results <- c.Do(ctx, i) }()
		}
		synctest.Wait() // all n are queued, waiting for their outcome
		if len(results) != 0 {
			t.Fatal("a request returned before its commit ran")
		}
		close(g.release)
		for range n + 1 {
			if err := <-results; err != nil {
				t.Errorf("Do: %v", err)
			}
		}
		c.Close()
		if len(g.sizes) != 2 || g.sizes[0] != 1 || g.sizes[1] != n {
			t.Fatalf("group sizes %v, want [1 %d]", g.sizes, n)
		}
	})
}

func TestMaxGroupBoundsGroupSize(t *testing.T) {
	for _, tt := range []struct {
		name              string
		maxGroup, bound   int
		queuedBehindFirst int
	}{
		{"Explicit4", 4, 4, 10},
		{"DefaultIs1024", 0, 1024, 1100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate()
				c := groupcommit.New(g.commit, tt.maxGroup)
				ctx := context.Background()
				var wg sync.WaitGroup
				wg.Go(func() { _ = c.Do(ctx, -1) })
				synctest.Wait()
				for i := range tt.queuedBehindFirst {
					wg.Go(func() {
						if err := c.Do(ctx, i); err != nil {
							t.Errorf("Do(%d): %v", i, err)
						}
					})
				}
				synctest.Wait() // queued, or blocked waiting for room in the queue
				close(g.release)
				wg.Wait()
				c.Close()

				total, largest := 0, 0
				for _, s := range g.sizes {
					total += s
					largest = max(largest, s)
				}
				if total != tt.queuedBehindFirst+1 {
					t.Errorf("%d requests committed, want %d", total, tt.queuedBehindFirst+1)
				}
				if largest != tt.bound {
					t.Errorf("group sizes %v: largest %d, want exactly the bound %d", g.sizes, largest, tt.bound)
				}
			})
		})
	}
}

// Close commits what is already queued (those callers were promised an outcome),
// refuses new requests and returns only when the committer has stopped.
func TestCloseDrainsQueuedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		g := newGate()
		c := groupcommit.New(g.commit, 0)
		ctx := context.Background()

		results := make(chan error, n+1)
		go func() { results <- c.Do(ctx, -1) }()
		synctest.Wait()
		for i := range n {
			go func() { results <- c.Do(ctx, i) }()
		}
		synctest.Wait()

		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		synctest.Wait() // Close has stopped intake and waits for the commits
		select {
		case <-closed:
			t.Fatal("Close returned while a commit was still running")
		default:
		}
		if err := c.Do(ctx, 1000); !errors.Is(err, groupcommit.ErrClosed) {
			t.Errorf("Do during Close = %v, want ErrClosed", err)
		}

		close(g.release)
		for range n + 1 {
			if err := <-results; err != nil {
				t.Errorf("queued request: %v, want nil (it was queued before Close)", err)
			}
		}
		<-closed
		if len(g.committed) != n+1 {
			t.Errorf("committed %d requests, want %d: %v", len(g.committed), n+1, g.committed)
		}
		for _, v := range g.committed {
			if v == 1000 {
				t.Error("a request refused with ErrClosed was committed")
			}
		}

		c.Close() // idempotent
		if err := c.Do(ctx, 1001); !errors.Is(err, groupcommit.ErrClosed) {
			t.Errorf("Do after Close = %v, want ErrClosed", err)
		}
	})
}

func TestCloseIsIdempotentAndConcurrent(t *testing.T) {
	var commits atomic.Int32
	c := groupcommit.New(func(group []*groupcommit.Request[int]) { commits.Add(1) }, 0)
	if err := c.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(c.Close)
	}
	waitOrFail(t, &wg)
	c.Close()
	if err := c.Do(t.Context(), 2); !errors.Is(err, groupcommit.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if n := commits.Load(); n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
}

// Requests racing with Close either commit (nil) or are refused (ErrClosed); none is
// lost, none is committed after Close returned, and none is committed without being
// reported.
func TestCloseRacingWithRequests(t *testing.T) {
	committed := map[int]bool{}
	afterClose := atomic.Bool{}
	var lateCommits atomic.Int32
	started := make(chan struct{})
	var startOnce sync.Once
	c := groupcommit.New(func(group []*groupcommit.Request[int]) {
		if afterClose.Load() {
			lateCommits.Add(1)
		}
		for _, r := range group {
			committed[r.Value] = true
		}
		startOnce.Do(func() { close(started) })
	}, 8)

	const goroutines = 32
	accepted := make([][]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				v := g*1_000_000 + i
				err := c.Do(t.Context(), v)
				if errors.Is(err, groupcommit.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Do(%d) = %v, want nil or ErrClosed", v, err)
					return
				}
				accepted[g] = append(accepted[g], v)
			}
		})
	}
	select { // close while requests are flowing
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no commit within 30s")
	}
	c.Close()
	afterClose.Store(true)
	waitOrFail(t, &wg)

	if n := lateCommits.Load(); n != 0 {
		t.Errorf("%d commits ran after Close returned", n)
	}
	total := 0
	for _, vs := range accepted {
		total += len(vs)
		for _, v := range vs {
			if !committed[v] {
				t.Fatalf("Do(%d) returned nil but the value was never committed", v)
			}
		}
	}
	if total != len(committed) {
		t.Errorf("%d requests reported success, %d committed", total, len(committed))
	}
}

func TestDoWithDoneContextIsNotQueued(t *testing.T) {
	var commits atomic.Int32
	c := groupcommit.New(func(group []*groupcommit.Request[int]) { commits.Add(int32(len(group))) }, 0)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Do(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context = %v, want context.Canceled", err)
	}
	expired, cancel2 := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel2()
	if err := c.Do(expired, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do with an expired context = %v, want context.DeadlineExceeded", err)
	}
	c.Close() // drains the queue: anything queued would be committed now
	if n := commits.Load(); n != 0 {
		t.Errorf("%d requests with a done context were committed", n)
	}
}

// A caller blocked because the queue is full gives up when its context ends, and its
// request is never committed.
func TestDoCancelledWhileWaitingForRoomIsNotQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		c := groupcommit.New(g.commit, 1) // a queue of one
		bg := context.Background()

		var wg sync.WaitGroup
		wg.Go(func() { _ = c.Do(bg, 1) }) // in the blocked commit
		synctest.Wait()
		wg.Go(func() { _ = c.Do(bg, 2) }) // fills the queue
		synctest.Wait()

		ctx, cancel := context.WithCancel(bg)
		result := make(chan error, 1)
		go func() { result <- c.Do(ctx, 3) }()
		synctest.Wait() // blocked: no room in the queue
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %v, want context.Canceled", err)
		}

		close(g.release)
		wg.Wait()
		c.Close()
		if len(g.committed) != 2 || g.committed[0] != 1 || g.committed[1] != 2 {
			t.Errorf("committed %v, want [1 2]", g.committed)
		}
	})
}

// Once queued, a request's outcome is awaited even if its context ends: the commit
// may already be writing it, and the caller must not be told "failed" for a write
// that lands. The commit function sees the context and decides.
func TestQueuedRequestWaitsForOutcomeAfterContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		var sawCancelled bool
		c := groupcommit.New(func(group []*groupcommit.Request[int]) {
			for _, r := range group {
				if r.Value == 2 {
					sawCancelled = errors.Is(r.Ctx.Err(), context.Canceled)
				}
			}
			g.commit(group) // writes every request regardless: nil for all
		}, 0)
		bg := context.Background()

		go func() { _ = c.Do(bg, 1) }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(bg)
		result := make(chan error, 1)
		go func() { result <- c.Do(ctx, 2) }()
		synctest.Wait() // queued behind the blocked commit
		cancel()
		synctest.Wait()
		select {
		case err := <-result:
			t.Fatalf("Do returned %v when its context ended, before its commit ran", err)
		default:
		}

		close(g.release)
		if err := <-result; err != nil {
			t.Errorf("Do = %v, want nil: the commit wrote the request", err)
		}
		c.Close()
		if !sawCancelled {
			t.Error("the commit function did not see the request's cancelled context")
		}
	})
}

// BenchmarkGroupCommit measures Do under parallel load, with a free commit and with
// one that costs about as much as an fsync, and reports how many requests share a
// commit.
func BenchmarkGroupCommit(b *testing.B) {
	for _, cost := range []time.Duration{0, 100 * time.Microsecond} {
		b.Run(fmt.Sprintf("commit=%v", cost), func(b *testing.B) {
			var commits atomic.Int64
			c := groupcommit.New(func(group []*groupcommit.Request[int]) {
				commits.Add(1)
				if cost > 0 {
					time.Sleep(cost) // stands for the disk, not for synchronisation
				}
			}, 0)
			defer c.Close()
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Do(ctx, 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if n := commits.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "requests/commit")
			}
		})
	}
}
