package mutation

// Bugs planted at the driver.Conn level: wrappers that change one method, or one
// path of one method, of a correct driver.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// window widens the gap of a check-then-act bug, as a slow disk or network
// round trip between the read and the write would. It is the bug, not
// synchronisation of a test.
func window() {
	runtime.Gosched()
	time.Sleep(300 * time.Microsecond)
}

type qkey struct {
	id    string
	class driver.PacketClass
}

// ---- apply: a function in place of Apply ----

type applyConn struct {
	driver.Conn
	f func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error)
}

func (a *applyConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	return a.f(a.Conn, ctx, ops)
}

func withApply(f func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error)) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn { return &applyConn{Conn: c, f: f} }
}

func single(ops []driver.Op, kind driver.OpKind) bool { return len(ops) == 1 && ops[0].Kind == kind }

func exists(c driver.Conn, ctx context.Context, id string, class driver.PacketClass, seq uint64) bool {
	_, err := c.PacketGet(ctx, id, class, seq)
	return err == nil
}

// ---- packets ----

type lifoConn struct{ driver.Conn }

func (c lifoConn) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	var all []*driver.PersistedPacket
	if err := c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		all = append(all, p)
		return false, nil
	}); err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		del, err := fn(all[i])
		if del {
			if _, e := c.Conn.Apply(ctx, []driver.Op{{Kind: driver.OpPacketDelete, ID: id, Class: class, Seq: all[i].Seq}}); e != nil {
				return e
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countDrift reports PacketCount off by a drift the bug accumulates.
type countDrift struct {
	driver.Conn
	mu    sync.Mutex
	drift map[qkey]int64
	// iter: deletes from PacketsForEach are not counted; missing: deleting a
	// missing packet still decrements; race: the existence check and the delete
	// are not atomic, so concurrent acks of one packet all decrement.
	iter, missing, race bool
	inflight            map[qkey]map[uint64]int
}

func newDrift(iter, missing, race bool) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn {
		return &countDrift{Conn: c, drift: map[qkey]int64{}, inflight: map[qkey]map[uint64]int{}, iter: iter, missing: missing, race: race}
	}
}

func (c *countDrift) add(k qkey, d int64) {
	c.mu.Lock()
	c.drift[k] += d
	c.mu.Unlock()
}

func (c *countDrift) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if !single(ops, driver.OpPacketDelete) || !(c.missing || c.race) {
		if len(ops) > 0 && (ops[0].Kind == driver.OpDelete || ops[0].Kind == driver.OpPacketsDelete) {
			c.mu.Lock()
			for k := range c.drift {
				if k.id == ops[0].ID {
					delete(c.drift, k)
				}
			}
			c.mu.Unlock()
		}
		return c.Conn.Apply(ctx, ops)
	}
	op := ops[0]
	k := qkey{op.ID, op.Class}
	had := exists(c.Conn, ctx, op.ID, op.Class, op.Seq)
	if c.race && had {
		c.mu.Lock()
		if c.inflight[k] == nil {
			c.inflight[k] = map[uint64]int{}
		}
		c.inflight[k][op.Seq]++
		c.mu.Unlock()
		window()
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	switch {
	case c.missing && !had:
		c.add(k, -1)
	case c.race && had:
		c.mu.Lock()
		// every caller that saw the packet decrements; the store decremented once
		if n := c.inflight[k][op.Seq]; n > 1 {
			c.drift[k]--
		}
		c.mu.Unlock()
	}
	return seqs, nil
}

func (c *countDrift) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	if !c.iter {
		return c.Conn.PacketsForEach(ctx, id, class, fn)
	}
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		del, err := fn(p)
		if del {
			c.add(qkey{id, class}, 1)
		}
		return del, err
	})
}

func (c *countDrift) PacketCount(ctx context.Context, id string, class driver.PacketClass) (uint64, error) {
	n, err := c.Conn.PacketCount(ctx, id, class)
	c.mu.Lock()
	d := c.drift[qkey{id, class}]
	c.mu.Unlock()
	return uint64(int64(n) + d), err
}

// deleteMissingNotFound: deleting a packet that is not there is ErrNotFound
// instead of a no-op.
var deleteMissingNotFound = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	for _, op := range ops {
		if op.Kind == driver.OpPacketDelete && !exists(c, ctx, op.ID, op.Class, op.Seq) {
			return nil, fmt.Errorf("packet %d: %w", op.Seq, driver.ErrNotFound)
		}
	}
	return c.Apply(ctx, ops)
})

// updateUpserts: an update of a missing packet appends it (an upsert).
var updateUpserts = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketUpdate) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Packet.Seq) {
		op := ops[0]
		op.Kind = driver.OpPacketAppend
		_, err := c.Apply(ctx, []driver.Op{op})
		return nil, err
	}
	return c.Apply(ctx, ops)
})

// deleteIgnoresClass: a delete that finds no packet of that seq in its class
// deletes the packet of that seq in whichever class holds it.
var deleteIgnoresClass = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketDelete) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Seq) {
		for _, class := range driver.PacketClasses {
			if exists(c, ctx, ops[0].ID, class, ops[0].Seq) {
				op := ops[0]
				op.Class = class
				return c.Apply(ctx, []driver.Op{op})
			}
		}
	}
	return c.Apply(ctx, ops)
})

// deleteIgnoresSession: a delete that finds no packet of that seq in its session
// deletes the packet of that seq in the session that holds it.
var deleteIgnoresSession = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if single(ops, driver.OpPacketDelete) && !exists(c, ctx, ops[0].ID, ops[0].Class, ops[0].Seq) {
		var ids []string
		_ = c.LoadForEach(ctx, func(ls *driver.LoadedSession) error { ids = append(ids, ls.ID); return nil })
		for _, id := range ids {
			if exists(c, ctx, id, ops[0].Class, ops[0].Seq) {
				op := ops[0]
				op.ID = id
				return c.Apply(ctx, []driver.Op{op})
			}
		}
	}
	return c.Apply(ctx, ops)
})

// stopDropsDelete: the packet whose callback asked for its deletion and stopped
// the iteration in the same call is not deleted.
type stopDropsDelete struct{ driver.Conn }

func (c stopDropsDelete) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		del, err := fn(p)
		if err != nil {
			return false, err
		}
		return del, nil
	})
}

// updateMerges: an update writes only the new Data (and QoS) over the stored
// packet: PacketID, ProtocolVersion and ExpireAt keep their old values.
var updateMerges = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	out := slices.Clone(ops)
	for i, op := range out {
		if op.Kind != driver.OpPacketUpdate {
			continue
		}
		old, err := c.PacketGet(ctx, op.ID, op.Class, op.Packet.Seq)
		if err != nil {
			continue
		}
		old.Data, old.QoS = op.Packet.Data, op.Packet.QoS
		out[i].Packet = old
	}
	return c.Apply(ctx, out)
})

// getIgnoresClass: PacketGet that finds nothing in the class looks in the others.
type getIgnoresClass struct{ driver.Conn }

func (c getIgnoresClass) PacketGet(ctx context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	if errors.Is(err, driver.ErrNotFound) {
		for _, other := range driver.PacketClasses {
			if q, e := c.Conn.PacketGet(ctx, id, other, seq); e == nil {
				return q, nil
			}
		}
	}
	return p, err
}

// aliasPackets keeps the caller's packet of every append and returns it (with its
// seq) from PacketGet: a change the caller makes after the call shows.
type aliasPackets struct {
	driver.Conn
	mu   sync.Mutex
	kept map[uint64]*driver.PersistedPacket
}

func (c *aliasPackets) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for _, op := range ops {
		if op.Kind == driver.OpPacketAppend {
			c.kept[seqs[i]] = op.Packet
			i++
		}
	}
	return seqs, nil
}

func (c *aliasPackets) PacketGet(ctx context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	if err == nil {
		c.mu.Lock()
		if k := c.kept[seq]; k != nil {
			p.Data = k.Data
		}
		c.mu.Unlock()
	}
	return p, err
}

// ---- subscriptions ----

// subsRewrite implements a single subscribe or unsubscribe as read the list,
// change it, write the whole list back: a concurrent change made in between is
// lost.
var subsRewrite = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if len(ops) != 1 || (ops[0].Kind != driver.OpSubscriptionStore && ops[0].Kind != driver.OpSubscriptionDelete) {
		return c.Apply(ctx, ops)
	}
	op := ops[0]
	subs, err := c.SubscriptionsLoad(ctx, op.ID)
	if err != nil {
		return nil, err
	}
	window()
	m := map[string]driver.Subscription{}
	for _, s := range subs {
		m[s.Filter] = s
	}
	if op.Kind == driver.OpSubscriptionStore {
		m[op.Subscription.Filter] = op.Subscription
	} else {
		delete(m, op.Filter)
	}
	out := []driver.Op{{Kind: driver.OpSubscriptionsDeleteAll, ID: op.ID}}
	for _, s := range m {
		out = append(out, driver.Op{Kind: driver.OpSubscriptionStore, ID: op.ID, Subscription: s})
	}
	return c.Apply(ctx, out)
})

// subsChange stores every subscription changed by f.
func subsChange(f func(*driver.Subscription)) func(driver.Conn) driver.Conn {
	return withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
		out := slices.Clone(ops)
		for i := range out {
			if out[i].Kind == driver.OpSubscriptionStore {
				f(&out[i].Subscription)
			}
		}
		return c.Apply(ctx, out)
	})
}

// subsDeleteAllKeepsOne: DeleteAll walks the sorted list from index 1.
var subsDeleteAllKeepsOne = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	var out []driver.Op
	for _, op := range ops {
		if op.Kind != driver.OpSubscriptionsDeleteAll {
			out = append(out, op)
			continue
		}
		subs, _ := c.SubscriptionsLoad(ctx, op.ID)
		slices.SortFunc(subs, func(a, b driver.Subscription) int { return cmp.Compare(a.Filter, b.Filter) })
		for i := 1; i < len(subs); i++ {
			out = append(out, driver.Op{Kind: driver.OpSubscriptionDelete, ID: op.ID, Filter: subs[i].Filter})
		}
		if len(subs) == 0 {
			out = append(out, op) // keeps the missing-session error
		}
	}
	return c.Apply(ctx, out)
})

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

// ---- batches ----

// oneByOne commits a batch's operations one at a time.
var oneByOne = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	var seqs []uint64
	for _, op := range ops {
		s, err := c.Apply(ctx, []driver.Op{op})
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, s...)
	}
	return seqs, nil
})

// groupByKind reorders a batch by operation kind (creates first, deletes last),
// as a driver that issues one statement per table would.
var groupByKind = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	rank := func(k driver.OpKind) int {
		switch k {
		case driver.OpCreate:
			return 0
		case driver.OpDelete:
			return 2
		}
		return 1
	}
	out := slices.Clone(ops)
	slices.SortStableFunc(out, func(a, b driver.Op) int { return cmp.Compare(rank(a.Kind), rank(b.Kind)) })
	return c.Apply(ctx, out)
})

// deleteCreateSkipped treats Delete then Create of the same id in one batch as
// "nothing to do" for that session's existing data: the old packets, state and
// subscriptions stay.
var deleteCreateSkipped = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	skip := map[int]bool{}
	for i, op := range ops {
		if op.Kind != driver.OpDelete {
			continue
		}
		j := slices.IndexFunc(ops[i+1:], func(o driver.Op) bool { return o.Kind == driver.OpCreate && o.ID == op.ID })
		if ok, _ := c.Exists(ctx, op.ID); ok && j >= 0 {
			skip[i], skip[i+1+j] = true, true
		}
	}
	var out []driver.Op
	for i, op := range ops {
		if !skip[i] {
			out = append(out, op)
		}
	}
	return c.Apply(ctx, out)
})

// largeBatchLosesTail commits the first 1024 operations of a batch and makes up
// sequence numbers for the appends after them.
var largeBatchLosesTail = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	const limit = 1024
	if len(ops) <= limit {
		return c.Apply(ctx, ops)
	}
	seqs, err := c.Apply(ctx, ops[:limit])
	if err != nil {
		return nil, err
	}
	next := uint64(1 << 40)
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1]
	}
	for _, op := range ops[limit:] {
		if op.Kind == driver.OpPacketAppend {
			next++
			seqs = append(seqs, next)
		}
	}
	return seqs, nil
})

// seqsBySession returns a batch's sequence numbers grouped by session instead of
// in append order.
var seqsBySession = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	type s struct {
		id  string
		seq uint64
	}
	var all []s
	i := 0
	for _, op := range ops {
		if op.Kind == driver.OpPacketAppend {
			all = append(all, s{op.ID, seqs[i]})
			i++
		}
	}
	slices.SortStableFunc(all, func(a, b s) int { return cmp.Compare(a.id, b.id) })
	for i := range all {
		seqs[i] = all[i].seq
	}
	return seqs, nil
})

// ---- group commit ----

// groupConn merges concurrent Apply calls into one commit, as a driver with group
// commit does; mode plants a bug in how results are handed back.
type groupConn struct {
	driver.Conn
	mode    groupBug
	mu      sync.Mutex
	pending []*groupReq
	leading bool
}

type groupBug uint8

const (
	groupErrorToAll   groupBug = iota + 1 // a failed group's error goes to every member
	groupSeqsShifted                      // seqs split between members off by one
	groupFailureAcked                     // after a failed group, members are retried alone but their errors dropped
)

type groupReq struct {
	ops  []driver.Op
	seqs []uint64
	err  error
	done chan struct{}
}

func newGroup(bug groupBug) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn { return &groupConn{Conn: c, mode: bug} }
}

func (g *groupConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	r := &groupReq{ops: ops, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		<-r.done
		return r.seqs, r.err
	}
	g.leading = true
	g.mu.Unlock()
	for {
		window() // let a group form
		g.mu.Lock()
		group := g.pending
		g.pending = nil
		if len(group) == 0 {
			g.leading = false
			g.mu.Unlock()
			break
		}
		g.mu.Unlock()
		g.commit(ctx, group)
	}
	<-r.done
	return r.seqs, r.err
}

func (g *groupConn) commit(ctx context.Context, group []*groupReq) {
	defer func() {
		for _, r := range group {
			close(r.done)
		}
	}()
	var all []driver.Op
	for _, r := range group {
		all = append(all, r.ops...)
	}
	seqs, err := g.Conn.Apply(ctx, all)
	if err == nil {
		i := 0
		for k, r := range group {
			n := 0
			for _, op := range r.ops {
				if op.Kind == driver.OpPacketAppend {
					n++
				}
			}
			from := i
			if g.mode == groupSeqsShifted && k > 0 && from > 0 {
				from--
			}
			r.seqs = slices.Clone(seqs[from : from+n])
			i += n
		}
		return
	}
	if g.mode == groupErrorToAll || len(group) == 1 {
		for _, r := range group {
			r.err = err
		}
		return
	}
	for _, r := range group {
		r.seqs, r.err = g.Conn.Apply(ctx, r.ops)
		if g.mode == groupFailureAcked {
			r.err = nil
		}
	}
}

// ---- retained ----

type retainedDeleteNoop struct{ driver.Conn }

func (retainedDeleteNoop) RetainedDelete(context.Context, string) error { return nil }

// retainedCountDrift reports RetainedCount off by a drift: replace counts a put
// over an existing topic as a new message; del forgets to decrement on delete.
type retainedCountDrift struct {
	driver.Conn
	replace, del bool
	mu           sync.Mutex
	drift        int64
}

func (c *retainedCountDrift) bump() {
	c.mu.Lock()
	c.drift++
	c.mu.Unlock()
}

func (c *retainedCountDrift) RetainedPut(ctx context.Context, topic string, p *driver.PersistedPacket) error {
	_, getErr := c.Conn.RetainedGet(ctx, topic)
	err := c.Conn.RetainedPut(ctx, topic, p)
	if err == nil && getErr == nil && c.replace {
		c.bump()
	}
	return err
}

func (c *retainedCountDrift) RetainedDelete(ctx context.Context, topic string) error {
	_, getErr := c.Conn.RetainedGet(ctx, topic)
	err := c.Conn.RetainedDelete(ctx, topic)
	if err == nil && getErr == nil && c.del {
		c.bump()
	}
	return err
}

func (c *retainedCountDrift) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	err := c.Conn.RetainedReplace(ctx, msgs)
	if err == nil {
		c.mu.Lock()
		c.drift = 0
		c.mu.Unlock()
	}
	return err
}

func (c *retainedCountDrift) RetainedCount(ctx context.Context) (uint64, error) {
	n, err := c.Conn.RetainedCount(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(int64(n) + c.drift), err
}

// retainedFirstWins keeps the first message of a topic in Store, not the last.
type retainedFirstWins struct{ driver.Conn }

func (c retainedFirstWins) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	seen := map[string]bool{}
	var out []*driver.RetainedMessage
	for _, m := range msgs {
		if !seen[m.Topic] {
			seen[m.Topic] = true
			out = append(out, m)
		}
	}
	return c.Conn.RetainedReplace(ctx, out)
}

// retainedGetMatches treats a topic with wildcards given to Get as a filter.
type retainedGetMatches struct{ driver.Conn }

func (c retainedGetMatches) RetainedGet(ctx context.Context, topic string) (*driver.PersistedPacket, error) {
	if strings.ContainsAny(topic, "+#") {
		var got *driver.PersistedPacket
		_ = c.Conn.RetainedLoad(ctx, []string{topic}, func(m *driver.RetainedMessage) error {
			got = m.Packet
			return driver.ErrStopIteration
		})
		if got != nil {
			return got, nil
		}
	}
	return c.Conn.RetainedGet(ctx, topic)
}

// matchConn matches retained messages with its own (broken) matcher.
type matchConn struct {
	driver.Conn
	match func(filter, topic string) bool
	// perFilter loads each filter separately: a message matching two filters is
	// delivered twice.
	perFilter bool
}

func (c matchConn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	if filters == nil {
		return c.Conn.RetainedLoad(ctx, nil, fn)
	}
	if c.perFilter {
		for _, f := range filters {
			if err := c.Conn.RetainedLoad(ctx, []string{f}, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return c.Conn.RetainedLoad(ctx, nil, func(m *driver.RetainedMessage) error {
		for _, f := range filters {
			if driver.ValidFilter(f) == nil && c.match(f, m.Topic) {
				return fn(m)
			}
		}
		return nil
	})
}

func withMatcher(match func(filter, topic string) bool) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn { return matchConn{Conn: c, match: match} }
}

// levels splits a topic or filter into levels.
func levels(s string) []string { return strings.Split(s, "/") }

// matchDollarAnyLevel refuses a wildcard on a '$' level at any depth.
func matchDollarAnyLevel(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i, fl := range f {
		if fl == "#" {
			for _, tl := range t[i:] {
				if strings.HasPrefix(tl, "$") {
					return false
				}
			}
			return true
		}
		if fl == "+" && strings.HasPrefix(t[i], "$") {
			return false
		}
	}
	return true
}

func matchTrimsTrailingSlash(filter, topic string) bool {
	return driver.MatchTopic(filter, strings.TrimSuffix(topic, "/"))
}

// matchPlusPastEnd lets a trailing '+' match a missing last level.
func matchPlusPastEnd(filter, topic string) bool {
	if driver.MatchTopic(filter, topic) {
		return true
	}
	if f, ok := strings.CutSuffix(filter, "/+"); ok {
		return driver.MatchTopic(f, topic)
	}
	return false
}

// matchPrefix lets a filter without wildcards match the topics below it.
func matchPrefix(filter, topic string) bool {
	return driver.MatchTopic(filter, topic) || (!strings.ContainsAny(filter, "+#") && strings.HasPrefix(topic, filter+"/"))
}

// matchPlusNotEmpty makes '+' refuse an empty level.
func matchPlusNotEmpty(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i, fl := range f {
		if fl == "#" {
			break
		}
		if fl == "+" && t[i] == "" {
			return false
		}
	}
	return true
}

// matchShallowPlus supports '+' only in the first four levels (a fixed-size
// array of wildcard positions); deeper it is compared literally.
func matchShallowPlus(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i := 4; i < len(f) && i < len(t); i++ {
		if f[i] == "+" && t[i] != "+" {
			return false
		}
	}
	return true
}

// matchHashNotParent: "a/#" does not match "a".
func matchHashNotParent(filter, topic string) bool {
	if p, ok := strings.CutSuffix(filter, "/#"); ok && topic == p {
		return false
	}
	return driver.MatchTopic(filter, topic)
}

// ---- locks, hangs and Close ----

// lockedExpiry holds one mutex through ExpiredForEach, callbacks included, and
// through every write and Close: a callback that deletes its session deadlocks.
type lockedExpiry struct {
	driver.Conn
	mu sync.Mutex
}

func (c *lockedExpiry) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.ExpiredForEach(ctx, now, fn)
}

func (c *lockedExpiry) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Apply(ctx, ops)
}

func (c *lockedExpiry) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}

// closeWaits holds a read lock for the whole of every retained load, callbacks
// included, and Close takes it exclusively: Close waits for the iteration.
type closeWaits struct {
	driver.Conn
	mu sync.RWMutex
}

func (c *closeWaits) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.Conn.RetainedLoad(ctx, filters, fn)
}

func (c *closeWaits) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}

// stuckPage blocks forever, ignoring the context, when a packet iteration reaches
// its second page, and Close waits for iterations.
type stuckPage struct {
	driver.Conn
	mu    sync.RWMutex
	never chan struct{}
}

func (c *stuckPage) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		if n++; n == 257 {
			<-c.never
		}
		return fn(p)
	})
}

func (c *stuckPage) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}
