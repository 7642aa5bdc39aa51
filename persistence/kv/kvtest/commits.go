package kvtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// commitRecorder is a persistence.CommitObserver that keeps every commit.
type commitRecorder struct {
	mu      sync.Mutex
	commits []driver.CommitInfo
}

func (r *commitRecorder) Begin(ctx context.Context, _ persistence.Call) (context.Context, func(error)) {
	return ctx, func(error) {}
}

func (r *commitRecorder) Commit(c driver.CommitInfo) {
	r.mu.Lock()
	r.commits = append(r.commits, c)
	r.mu.Unlock()
}

func (r *commitRecorder) take() []driver.CommitInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.commits
	r.commits = nil
	return c
}

// Commits checks that every group commit is reported to the observer's Commit: one
// call with Calls=1 for a lone write, and as many calls carried in all as there were
// writes when 32 goroutines write at once (fewer commits than writes is group commit
// at work, which the test does not require).
func Commits(t *testing.T, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := &commitRecorder{}
	p, err := persistence.Open(ctx, dsn, persistence.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ss := p.Sessions()
	rec.take() // whatever opening wrote
	if err := ss.Create(ctx, "c", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 1 || got[0].Calls != 1 || got[0].Err != nil || got[0].Duration <= 0 {
		t.Errorf("one Create reported commits %+v; want one of 1 call, no error, a positive duration", got)
	}
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := ss.Create(ctx, fmt.Sprintf("w%d", i), persistence.SessionBase{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	calls := 0
	for _, c := range rec.take() {
		if c.Err != nil {
			t.Errorf("commit reported error %v", c.Err)
		}
		calls += c.Calls
	}
	if calls != n {
		t.Errorf("commits carried %d calls, want %d", calls, n)
	}
}
