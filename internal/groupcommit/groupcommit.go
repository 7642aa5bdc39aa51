// Package groupcommit merges concurrent writes into shared commits: while one commit
// is being made durable, the requests that arrive queue up, and the next commit takes
// all of them at once, with no fixed delay. Each request keeps its own error, so a
// driver can keep every caller's operation atomic while paying for one fsync (or one
// database round trip) per group instead of per operation.
//
// It is internal to this module: persistence/kv and the PostgreSQL driver use it. A
// third-party driver gets group commit by building on persistence/kv.
package groupcommit

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: committer is closed")

// Request is one caller's operation inside a group.
type Request[T any] struct {
	// Ctx is the caller's context. A commit function should skip requests whose
	// context is already done and set Err to Ctx.Err().
	Ctx context.Context
	// Value is the caller's operation.
	Value T
	// Err is set by the commit function: the caller's own result.
	Err error

	done chan struct{}
}

// CommitFunc commits a group of requests and sets each request's Err. The group is
// never empty. It runs on one goroutine at a time.
type CommitFunc[T any] func(group []*Request[T])

// Committer runs a CommitFunc for groups of concurrent requests.
type Committer[T any] struct {
	commit   CommitFunc[T]
	maxGroup int
	in       chan *Request[T]
	quit     chan struct{}
	stopped  chan struct{}
	once     sync.Once
	mu       sync.RWMutex // guards sends on in against Close
	closed   bool
}

// New starts a committer. maxGroup bounds the number of requests in one group (0
// means 1024).
func New[T any](commit CommitFunc[T], maxGroup int) *Committer[T] {
	if maxGroup <= 0 {
		maxGroup = 1024
	}
	c := &Committer[T]{
		commit:   commit,
		maxGroup: maxGroup,
		in:       make(chan *Request[T], maxGroup),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go c.loop()
	return c
}

// Do queues v, waits for the group it joined to be committed and returns its error.
// Once v is queued Do waits for the outcome even if ctx ends, because the commit may
// already be under way and a caller must never be told "failed" for a write that
// landed; the commit function skips requests whose context ended before the group
// started.
func (c *Committer[T]) Do(ctx context.Context, v T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &Request[T]{Ctx: ctx, Value: v, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	select {
	case c.in <- r:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	<-r.done
	return r.Err
}

func (c *Committer[T]) loop() {
	defer close(c.stopped)
	group := make([]*Request[T], 0, c.maxGroup)
	for {
		var first *Request[T]
		select {
		case first = <-c.in:
		case <-c.quit:
			// Close waited for senders; drain whatever is still queued.
			for {
				select {
				case r := <-c.in:
					c.run(append(group[:0], r))
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
	fill:
		for len(group) < c.maxGroup {
			select {
			case r := <-c.in:
				group = append(group, r)
			default:
				break fill
			}
		}
		c.run(group)
	}
}

func (c *Committer[T]) run(group []*Request[T]) {
	c.commit(group)
	for _, r := range group {
		close(r.done)
	}
	clear(group)
}

// Close stops accepting requests, commits those already queued and waits for the
// committer to stop. It is idempotent.
func (c *Committer[T]) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.quit)
	})
	<-c.stopped
}
