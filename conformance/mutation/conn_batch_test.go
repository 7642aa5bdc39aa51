package mutation

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

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
