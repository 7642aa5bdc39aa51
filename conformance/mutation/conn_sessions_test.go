package mutation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- sessions ----

// deleteLeavesState keeps the state of a deleted session and gives it to the next
// session created with the same id.
type deleteLeavesState struct {
	driver.Conn
	mu   sync.Mutex
	left map[string]*driver.SessionState
}

func (c *deleteLeavesState) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	for _, op := range ops {
		if op.Kind == driver.OpDelete {
			if st, err := c.Conn.StateGet(ctx, op.ID); err == nil {
				c.mu.Lock()
				c.left[op.ID] = st
				c.mu.Unlock()
			}
		}
	}
	out := slices.Clone(ops)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Kind != driver.OpCreate {
			continue
		}
		c.mu.Lock()
		st := c.left[out[i].ID]
		c.mu.Unlock()
		if st != nil {
			out = slices.Insert(out, i+1, driver.Op{Kind: driver.OpStateStore, ID: out[i].ID, State: st})
		}
	}
	return c.Conn.Apply(ctx, out)
}

// createUpserts checks that a session is missing, then writes it, not atomically:
// two concurrent Creates both succeed and the second wipes the first.
var createUpserts = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if !single(ops, driver.OpCreate) {
		return c.Apply(ctx, ops)
	}
	ok, err := c.Exists(ctx, ops[0].ID)
	if err != nil {
		return nil, err
	}
	if ok {
		return nil, fmt.Errorf("session %q: %w", ops[0].ID, driver.ErrAlreadyExists)
	}
	window()
	return c.Apply(ctx, []driver.Op{{Kind: driver.OpDelete, ID: ops[0].ID}, ops[0]})
})

// sessionCountDrift reports Count off by a drift: failed counts a Create refused
// with ErrAlreadyExists; reset counts a Delete and Create of the same id in one
// batch as one more session.
type sessionCountDrift struct {
	driver.Conn
	failed, reset bool
	mu            sync.Mutex
	drift         int64
}

func (c *sessionCountDrift) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	var d int64
	if c.reset {
		deleted := map[string]bool{}
		for _, op := range ops {
			switch op.Kind {
			case driver.OpDelete:
				if ok, _ := c.Conn.Exists(ctx, op.ID); ok {
					deleted[op.ID] = true
				}
			case driver.OpCreate:
				if deleted[op.ID] {
					d++
				}
			}
		}
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if c.failed && single(ops, driver.OpCreate) && errors.Is(err, driver.ErrAlreadyExists) {
		d++
	}
	if err == nil || c.failed {
		c.mu.Lock()
		c.drift += d
		c.mu.Unlock()
	}
	return seqs, err
}

func (c *sessionCountDrift) Count(ctx context.Context) (uint64, error) {
	n, err := c.Conn.Count(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(int64(n) + c.drift), err
}

// loadInnerJoin: LoadForEach joins sessions with their state, so sessions without
// state are not visited.
type loadInnerJoin struct{ driver.Conn }

func (c loadInnerJoin) LoadForEach(ctx context.Context, fn driver.SessionLoader) error {
	return c.Conn.LoadForEach(ctx, func(ls *driver.LoadedSession) error {
		if ls.State == nil {
			return nil
		}
		return fn(ls)
	})
}

// loadDropsExpiry: LoadForEach does not read the deadlines.
type loadDropsExpiry struct{ driver.Conn }

func (c loadDropsExpiry) LoadForEach(ctx context.Context, fn driver.SessionLoader) error {
	return c.Conn.LoadForEach(ctx, func(ls *driver.LoadedSession) error {
		ls.Expiry = nil
		return fn(ls)
	})
}

// stateCache returns the same cached *SessionState from every StateGet.
type stateCache struct {
	driver.Conn
	mu    sync.Mutex
	cache map[string]*driver.SessionState
}

func (c *stateCache) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	c.mu.Lock()
	for _, op := range ops {
		delete(c.cache, op.ID)
	}
	c.mu.Unlock()
	return c.Conn.Apply(ctx, ops)
}

func (c *stateCache) StateGet(ctx context.Context, id string) (*driver.SessionState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.cache[id]; st != nil {
		return st, nil
	}
	st, err := c.Conn.StateGet(ctx, id)
	if err == nil {
		c.cache[id] = st
	}
	return st, err
}
