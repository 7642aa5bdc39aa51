package conformance

// Deliberately broken drivers: wrappers around the in-memory driver's driver.Conn
// that each break one rule the suite pins, opened into a *persistence.Store with
// persistence.OpenConnector as any driver is. selftest_test.go proves that the suite
// catches them.
//
// Only rules a driver can break are planted: the Store itself enforces the closed
// store, done contexts, argument validation, nil callbacks, ErrStopIteration and the
// checks between callbacks, so a driver that forgets them cannot be told apart from
// one that does not.

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// ---- opening a wrapped driver ----

// wrapConnector connects base and hands the Store the Conn wrap makes of it.
type wrapConnector struct {
	base driver.Connector
	wrap func(driver.Conn) driver.Conn
}

func (c wrapConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return c.wrap(conn), nil
}

// connConnector is a connector for a Conn that is already open.
type connConnector struct{ conn driver.Conn }

func (c connConnector) Connect(context.Context, driver.Env) (driver.Conn, error) { return c.conn, nil }

// memConnector returns the in-memory driver's connector.
func memConnector() driver.Connector {
	c, err := persistence.NewConnector(mem.Name + "://")
	if err != nil {
		panic(err)
	}
	return c
}

// ---- LIFO iteration ----

type lifoConn struct{ driver.Conn }

func (c lifoConn) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn driver.PacketLoader) error {
	var all []*persistence.PersistedPacket
	if err := c.Conn.PacketsForEach(ctx, id, class, func(p *persistence.PersistedPacket) (bool, error) {
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

// ---- Delete that leaves subscriptions behind ----

// leftoverSubs forgets to delete subscriptions with their session: a session created
// again with the same id finds them.
type leftoverSubs struct {
	driver.Conn
	mu   sync.Mutex
	left map[string][]persistence.Subscription
}

func (c *leftoverSubs) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	deleted := map[string][]persistence.Subscription{}
	for _, op := range ops {
		if op.Kind == driver.OpDelete {
			if subs, _ := c.Conn.SubscriptionsLoad(ctx, op.ID); len(subs) > 0 {
				deleted[op.ID] = subs
			}
		}
	}
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	for id, subs := range deleted {
		c.left[id] = subs
	}
	c.mu.Unlock()
	for _, op := range ops {
		if op.Kind != driver.OpCreate {
			continue
		}
		c.mu.Lock()
		subs := c.left[op.ID]
		c.mu.Unlock()
		if ok, _ := c.Conn.Exists(ctx, op.ID); !ok || len(subs) == 0 {
			continue
		}
		var back []driver.Op
		for _, s := range subs {
			back = append(back, driver.Op{Kind: driver.OpSubscriptionStore, ID: op.ID, Subscription: s})
		}
		if _, err := c.Conn.Apply(ctx, back); err != nil {
			return seqs, err
		}
	}
	return seqs, nil
}

// ---- missing ErrNotFound ----

// nilOnMissing returns a nil value and a nil error from gets of missing items.
type nilOnMissing struct{ driver.Conn }

func (c nilOnMissing) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

func (c nilOnMissing) StateGet(ctx context.Context, id string) (*persistence.SessionState, error) {
	st, err := c.Conn.StateGet(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return st, err
}

func (c nilOnMissing) RetainedGet(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	p, err := c.Conn.RetainedGet(ctx, topic)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

// ---- sequence-number remapping: reuse after delete, update that moves to the tail ----

type remapQueue struct {
	v2r, r2v map[uint64]uint64
}

// remapConn shows the caller its own sequence numbers ("virtual") instead of the
// store's. With neither flag set the virtual numbers are the real ones and the
// wrapper is correct (a control for the wrapper itself). reuse numbers each queue's
// packets max+1 of the live ones, as a careless "SELECT max(seq)+1" does, so deleting
// the tail reuses its number; updateToTail implements an update of a stored packet as
// delete and append, moving the packet to the tail of its queue.
type remapConn struct {
	driver.Conn
	reuse, updateToTail bool
	mu                  sync.Mutex
	qs                  map[seqKey]*remapQueue
}

func newRemap(c driver.Conn, reuse, updateToTail bool) *remapConn {
	return &remapConn{Conn: c, reuse: reuse, updateToTail: updateToTail, qs: map[seqKey]*remapQueue{}}
}

// missingSeq is a real sequence number mem never assigns in a test.
const missingSeq = math.MaxUint64 - 1

func (c *remapConn) q(id string, class persistence.PacketClass) *remapQueue {
	k := seqKey{id, class}
	q := c.qs[k]
	if q == nil {
		q = &remapQueue{v2r: map[uint64]uint64{}, r2v: map[uint64]uint64{}}
		c.qs[k] = q
	}
	return q
}

func (c *remapConn) add(id string, class persistence.PacketClass, real uint64) uint64 {
	q := c.q(id, class)
	virt := real
	if c.reuse {
		virt = 1
		for v := range q.v2r {
			virt = max(virt, v+1)
		}
	}
	q.v2r[virt], q.r2v[real] = real, virt
	return virt
}

func (c *remapConn) real(id string, class persistence.PacketClass, virt uint64) uint64 {
	if r, ok := c.q(id, class).v2r[virt]; ok {
		return r
	}
	return missingSeq
}

func (c *remapConn) forget(id string, class persistence.PacketClass, virt uint64) {
	q := c.q(id, class)
	if r, ok := q.v2r[virt]; ok {
		delete(q.v2r, virt)
		delete(q.r2v, r)
	}
}

func (c *remapConn) forgetAll(id string, classes ...persistence.PacketClass) {
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	for _, class := range classes {
		delete(c.qs, seqKey{id, class})
	}
}

func (c *remapConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// appendAt[i] is the index, in the sequence numbers the real Apply returns, of
	// the append ops[i] became (an append, or an update moved to the tail); -1 for
	// none.
	appendAt := make([]int, len(ops))
	moved := make([]bool, len(ops))
	real := make([]driver.Op, 0, len(ops))
	appends := 0
	for i, op := range ops {
		appendAt[i] = -1
		switch op.Kind {
		case driver.OpPacketAppend:
			appendAt[i] = appends
			appends++
		case driver.OpPacketUpdate:
			p := op.Packet.Clone()
			p.Seq = c.real(op.ID, op.Class, p.Seq)
			if c.updateToTail {
				if _, err := c.Conn.PacketGet(ctx, op.ID, op.Class, p.Seq); err == nil {
					real = append(real,
						driver.Op{Kind: driver.OpPacketDelete, ID: op.ID, Class: op.Class, Seq: p.Seq},
						driver.Op{Kind: driver.OpPacketAppend, ID: op.ID, Class: op.Class, Packet: p})
					appendAt[i], moved[i] = appends, true
					appends++
					continue
				}
			}
			op.Packet = p
		case driver.OpPacketDelete:
			op.Seq = c.real(op.ID, op.Class, op.Seq)
		}
		real = append(real, op)
	}
	reals, err := c.Conn.Apply(ctx, real)
	if err != nil {
		return nil, err
	}
	var virts []uint64
	for i, op := range ops {
		switch op.Kind {
		case driver.OpDelete:
			c.forgetAll(op.ID)
		case driver.OpPacketAppend:
			virts = append(virts, c.add(op.ID, op.Class, reals[appendAt[i]]))
		case driver.OpPacketUpdate:
			if moved[i] {
				q := c.q(op.ID, op.Class)
				delete(q.r2v, q.v2r[op.Packet.Seq])
				r := reals[appendAt[i]]
				q.v2r[op.Packet.Seq], q.r2v[r] = r, op.Packet.Seq
			}
		case driver.OpPacketDelete:
			c.forget(op.ID, op.Class, op.Seq)
		case driver.OpPacketsDelete:
			c.forgetAll(op.ID, op.Class)
		}
	}
	return virts, nil
}

func (c *remapConn) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.Conn.PacketGet(ctx, id, class, c.real(id, class, seq))
	if p != nil {
		p.Seq = seq
	}
	return p, err
}

func (c *remapConn) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn driver.PacketLoader) error {
	return c.Conn.PacketsForEach(ctx, id, class, func(p *persistence.PersistedPacket) (bool, error) {
		c.mu.Lock()
		virt, ok := c.q(id, class).r2v[p.Seq]
		c.mu.Unlock()
		if !ok {
			return false, nil // appended meanwhile, not mapped yet
		}
		p.Seq = virt
		del, err := fn(p)
		if del {
			c.mu.Lock()
			c.forget(id, class, virt)
			c.mu.Unlock()
		}
		return del, err
	})
}

// ---- hooks around every call: locks held during callbacks ----

// callHook runs one call (fn) of the named method.
type callHook func(ctx context.Context, method string, fn func(ctx context.Context) error) error

// hookConn runs every method of Conn but Close through hook.
type hookConn struct {
	driver.Conn
	hook callHook
}

func (c *hookConn) Apply(ctx context.Context, ops []driver.Op) (seqs []uint64, err error) {
	err = c.hook(ctx, "Apply", func(ctx context.Context) (e error) { seqs, e = c.Conn.Apply(ctx, ops); return e })
	return seqs, err
}

func (c *hookConn) Exists(ctx context.Context, id string) (ok bool, err error) {
	err = c.hook(ctx, "Exists", func(ctx context.Context) (e error) { ok, e = c.Conn.Exists(ctx, id); return e })
	return ok, err
}

func (c *hookConn) Count(ctx context.Context) (n uint64, err error) {
	err = c.hook(ctx, "Count", func(ctx context.Context) (e error) { n, e = c.Conn.Count(ctx); return e })
	return n, err
}

func (c *hookConn) LoadForEach(ctx context.Context, fn driver.SessionLoader) error {
	return c.hook(ctx, "LoadForEach", func(ctx context.Context) error { return c.Conn.LoadForEach(ctx, fn) })
}

func (c *hookConn) SubscriptionsLoad(ctx context.Context, id string) (subs []persistence.Subscription, err error) {
	err = c.hook(ctx, "SubscriptionsLoad", func(ctx context.Context) (e error) { subs, e = c.Conn.SubscriptionsLoad(ctx, id); return e })
	return subs, err
}

func (c *hookConn) StateGet(ctx context.Context, id string) (st *persistence.SessionState, err error) {
	err = c.hook(ctx, "StateGet", func(ctx context.Context) (e error) { st, e = c.Conn.StateGet(ctx, id); return e })
	return st, err
}

func (c *hookConn) ExpiryGet(ctx context.Context, id string) (x persistence.SessionExpiry, err error) {
	err = c.hook(ctx, "ExpiryGet", func(ctx context.Context) (e error) { x, e = c.Conn.ExpiryGet(ctx, id); return e })
	return x, err
}

func (c *hookConn) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	return c.hook(ctx, "ExpiredForEach", func(ctx context.Context) error { return c.Conn.ExpiredForEach(ctx, now, fn) })
}

func (c *hookConn) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (p *persistence.PersistedPacket, err error) {
	err = c.hook(ctx, "PacketGet", func(ctx context.Context) (e error) { p, e = c.Conn.PacketGet(ctx, id, class, seq); return e })
	return p, err
}

func (c *hookConn) PacketCount(ctx context.Context, id string, class persistence.PacketClass) (n uint64, err error) {
	err = c.hook(ctx, "PacketCount", func(ctx context.Context) (e error) { n, e = c.Conn.PacketCount(ctx, id, class); return e })
	return n, err
}

func (c *hookConn) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn driver.PacketLoader) error {
	return c.hook(ctx, "PacketsForEach", func(ctx context.Context) error { return c.Conn.PacketsForEach(ctx, id, class, fn) })
}

func (c *hookConn) RetainedPut(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	return c.hook(ctx, "RetainedPut", func(ctx context.Context) error { return c.Conn.RetainedPut(ctx, topic, p) })
}

func (c *hookConn) RetainedGet(ctx context.Context, topic string) (p *persistence.PersistedPacket, err error) {
	err = c.hook(ctx, "RetainedGet", func(ctx context.Context) (e error) { p, e = c.Conn.RetainedGet(ctx, topic); return e })
	return p, err
}

func (c *hookConn) RetainedDelete(ctx context.Context, topic string) error {
	return c.hook(ctx, "RetainedDelete", func(ctx context.Context) error { return c.Conn.RetainedDelete(ctx, topic) })
}

func (c *hookConn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	return c.hook(ctx, "RetainedLoad", func(ctx context.Context) error { return c.Conn.RetainedLoad(ctx, filters, fn) })
}

func (c *hookConn) RetainedReplace(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	return c.hook(ctx, "RetainedReplace", func(ctx context.Context) error { return c.Conn.RetainedReplace(ctx, msgs) })
}

func (c *hookConn) RetainedCount(ctx context.Context) (n uint64, err error) {
	err = c.hook(ctx, "RetainedCount", func(ctx context.Context) (e error) { n, e = c.Conn.RetainedCount(ctx); return e })
	return n, err
}

func (c *hookConn) Info(ctx context.Context) (info persistence.SystemInfo, err error) {
	err = c.hook(ctx, "Info", func(ctx context.Context) (e error) { info, e = c.Conn.Info(ctx); return e })
	return info, err
}

// lockedCallbacks holds one store-wide mutex for the whole of every call, callbacks
// included: a callback that calls back into the store deadlocks.
func lockedCallbacks(c driver.Conn) driver.Conn {
	var mu sync.Mutex
	return &hookConn{Conn: c, hook: func(ctx context.Context, _ string, fn func(context.Context) error) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(ctx)
	}}
}

// ---- callback error swallowed ----

type swallowConn struct{ driver.Conn }

func (c swallowConn) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn driver.PacketLoader) error {
	var cbErr error
	err := c.Conn.PacketsForEach(ctx, id, class, func(p *persistence.PersistedPacket) (bool, error) {
		del, err := fn(p)
		cbErr = err
		return del, err
	})
	if cbErr != nil {
		return nil
	}
	return err
}

func (c swallowConn) LoadForEach(ctx context.Context, fn driver.SessionLoader) error {
	var cbErr error
	err := c.Conn.LoadForEach(ctx, func(ls *persistence.LoadedSession) error { cbErr = fn(ls); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

func (c swallowConn) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	var cbErr error
	err := c.Conn.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error { cbErr = fn(id, e); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

func (c swallowConn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	var cbErr error
	err := c.Conn.RetainedLoad(ctx, filters, func(m *persistence.RetainedMessage) error { cbErr = fn(m); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

// ---- stored values alias the caller's slices ----

// aliasConn keeps the caller's Data slice of every appended or updated packet and of
// every retained message put, and hands that same slice out on every read.
type aliasConn struct {
	driver.Conn
	mu       sync.Mutex
	data     map[uint64][]byte // by packet sequence number (store-wide in mem)
	retained map[string][]byte // by topic
}

func newAlias(c driver.Conn) *aliasConn {
	return &aliasConn{Conn: c, data: map[uint64][]byte{}, retained: map[string][]byte{}}
}

func (c *aliasConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	seqs, err := c.Conn.Apply(ctx, ops)
	if err != nil {
		return seqs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for _, op := range ops {
		switch op.Kind {
		case driver.OpPacketAppend:
			c.data[seqs[i]] = op.Packet.Data
			i++
		case driver.OpPacketUpdate:
			c.data[op.Packet.Seq] = op.Packet.Data
		}
	}
	return seqs, nil
}

func (c *aliasConn) swap(p *persistence.PersistedPacket) {
	if p == nil {
		return
	}
	c.mu.Lock()
	if d, ok := c.data[p.Seq]; ok {
		p.Data = d
	}
	c.mu.Unlock()
}

func (c *aliasConn) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	p, err := c.Conn.PacketGet(ctx, id, class, seq)
	c.swap(p)
	return p, err
}

func (c *aliasConn) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn driver.PacketLoader) error {
	return c.Conn.PacketsForEach(ctx, id, class, func(p *persistence.PersistedPacket) (bool, error) {
		c.swap(p)
		return fn(p)
	})
}

func (c *aliasConn) RetainedPut(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	err := c.Conn.RetainedPut(ctx, topic, p)
	if err == nil {
		c.mu.Lock()
		c.retained[topic] = p.Data
		c.mu.Unlock()
	}
	return err
}

func (c *aliasConn) swapRetained(topic string, p *persistence.PersistedPacket) {
	if p == nil {
		return
	}
	c.mu.Lock()
	if d, ok := c.retained[topic]; ok {
		p.Data = d
	}
	c.mu.Unlock()
}

func (c *aliasConn) RetainedGet(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	p, err := c.Conn.RetainedGet(ctx, topic)
	c.swapRetained(topic, p)
	return p, err
}

func (c *aliasConn) RetainedDelete(ctx context.Context, topic string) error {
	c.mu.Lock()
	delete(c.retained, topic)
	c.mu.Unlock()
	return c.Conn.RetainedDelete(ctx, topic)
}

func (c *aliasConn) RetainedReplace(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	err := c.Conn.RetainedReplace(ctx, msgs)
	if err == nil {
		c.mu.Lock()
		clear(c.retained)
		c.mu.Unlock()
	}
	return err
}

func (c *aliasConn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	return c.Conn.RetainedLoad(ctx, filters, func(m *persistence.RetainedMessage) error {
		c.swapRetained(m.Topic, m.Packet)
		return fn(m)
	})
}

// ---- ExpiredForEach returns sessions not yet due ----

type expiredEarly struct{ driver.Conn }

func (c expiredEarly) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	return c.Conn.ExpiredForEach(ctx, now.Add(time.Hour), fn)
}

// ---- '#' and '+' match '$' topics ----

type dollarMatch struct{ driver.Conn }

func (c dollarMatch) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	if filters == nil {
		return c.Conn.RetainedLoad(ctx, nil, fn)
	}
	return c.Conn.RetainedLoad(ctx, nil, func(m *persistence.RetainedMessage) error {
		for _, f := range filters {
			if driver.MatchTopic(f, m.Topic) ||
				(strings.HasPrefix(m.Topic, "$") && driver.MatchTopic(f, "_"+m.Topic[1:])) {
				return fn(m)
			}
		}
		return nil
	})
}
