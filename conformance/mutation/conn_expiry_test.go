package mutation

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- state and deadlines ----

// expiryRewritesState stores deadlines by rewriting the session's record, state
// included, as read before: a state stored concurrently is lost.
var expiryRewritesState = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if !single(ops, driver.OpExpiryStore) {
		return c.Apply(ctx, ops)
	}
	st, err := c.StateGet(ctx, ops[0].ID)
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		return nil, err
	}
	window()
	out := []driver.Op{{Kind: driver.OpStateDelete, ID: ops[0].ID}}
	if st != nil {
		out[0] = driver.Op{Kind: driver.OpStateStore, ID: ops[0].ID, State: st}
	}
	return c.Apply(ctx, append(out, ops[0]))
})

// truncateTimes stores times cut to a coarser unit.
func truncateTimes(stateUnit, expiryUnit time.Duration) func(driver.Conn) driver.Conn {
	return withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
		out := slices.Clone(ops)
		for i := range out {
			switch {
			case out[i].Kind == driver.OpStateStore && stateUnit > 0:
				st := out[i].State.Clone()
				st.DisconnectedAt = st.DisconnectedAt.Truncate(stateUnit)
				out[i].State = st
			case out[i].Kind == driver.OpExpiryStore && expiryUnit > 0:
				x := out[i].Expiry
				x.ExpireAt, x.WillAt = x.ExpireAt.Truncate(expiryUnit), x.WillAt.Truncate(expiryUnit)
				out[i].Expiry = x
			}
		}
		return c.Apply(ctx, out)
	})
}

// zeroExpiryKept stores a zero SessionExpiry as a record instead of deleting.
type zeroExpiryKept struct {
	driver.Conn
	mu   sync.Mutex
	zero map[string]bool
}

func (c *zeroExpiryKept) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range ops {
		switch op.Kind {
		case driver.OpExpiryStore:
			c.zero[op.ID] = op.Expiry.IsZero()
		case driver.OpExpiryDelete, driver.OpDelete:
			delete(c.zero, op.ID)
		}
	}
	return seqs, nil
}

func (c *zeroExpiryKept) ExpiryGet(ctx context.Context, id string) (driver.SessionExpiry, error) {
	c.mu.Lock()
	z := c.zero[id]
	c.mu.Unlock()
	if z {
		return driver.SessionExpiry{}, nil
	}
	return c.Conn.ExpiryGet(ctx, id)
}

// expiredFilter changes what ExpiredForEach is asked or delivers.
type expiredConn struct {
	driver.Conn
	shift   time.Duration                                    // added to now
	keep    func(now time.Time, x driver.SessionExpiry) bool // nil keeps all
	sortIDs bool                                             // deliver in id order, not deadline order
}

func (c expiredConn) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	now = now.Add(c.shift)
	if !c.sortIDs {
		return c.Conn.ExpiredForEach(ctx, now, func(id string, x driver.SessionExpiry) error {
			if c.keep != nil && !c.keep(now, x) {
				return nil
			}
			return fn(id, x)
		})
	}
	type item struct {
		id string
		x  driver.SessionExpiry
	}
	var all []item
	if err := c.Conn.ExpiredForEach(ctx, now, func(id string, x driver.SessionExpiry) error {
		all = append(all, item{id, x})
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b item) int { return cmp.Compare(a.id, b.id) })
	for _, it := range all {
		if err := fn(it.id, it.x); err != nil {
			return err
		}
	}
	return nil
}

// staleExpiry remembers the deadlines of sessions deleted (whole, or their
// deadlines only) and still delivers them from ExpiredForEach: the expiry index
// entry was left behind.
type staleExpiry struct {
	driver.Conn
	onSessionDelete, onExpiryDelete bool
	mu                              sync.Mutex
	stale                           map[string]driver.SessionExpiry
}

func (c *staleExpiry) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	gone := map[string]driver.SessionExpiry{}
	for _, op := range ops {
		if (op.Kind == driver.OpDelete && c.onSessionDelete) || (op.Kind == driver.OpExpiryDelete && c.onExpiryDelete) {
			if x, err := c.Conn.ExpiryGet(ctx, op.ID); err == nil {
				gone[op.ID] = x
			}
		}
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if err == nil {
		c.mu.Lock()
		for id, x := range gone {
			c.stale[id] = x
		}
		for _, op := range ops {
			if op.Kind == driver.OpExpiryStore || op.Kind == driver.OpCreate {
				delete(c.stale, op.ID)
			}
		}
		c.mu.Unlock()
	}
	return seqs, err
}

func (c *staleExpiry) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	if err := c.Conn.ExpiredForEach(ctx, now, fn); err != nil {
		return err
	}
	c.mu.Lock()
	stale := maps(c.stale)
	c.mu.Unlock()
	for id, x := range stale {
		if (!x.ExpireAt.IsZero() && !x.ExpireAt.After(now)) || (!x.WillAt.IsZero() && !x.WillAt.After(now)) {
			if err := fn(id, x); err != nil {
				return err
			}
		}
	}
	return nil
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
