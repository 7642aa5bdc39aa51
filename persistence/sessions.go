package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Sessions is the session store of a [Store]: session records, their subscriptions,
// state, deadlines and the four packet classes, and atomic multi-operation writes
// ([Sessions.Apply]). Every write to a session that does not exist returns
// [ErrNotFound], except Create and Delete.
type Sessions struct{ s *Store }

// apply checks and commits ops for the single-call methods.
func (ss *Sessions) apply(ctx context.Context, op string, ops []driver.Op) ([]uint64, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, op, len(ops))
	if err != nil {
		return nil, c.end(err)
	}
	for i := range ops {
		if err := ops[i].Validate(); err != nil {
			return nil, c.end(err)
		}
	}
	if ops, err = s.fences(op, ops); err != nil { // shared.go
		return nil, c.end(err)
	}
	seqs, err := s.conn.Apply(ctx, ops)
	return seqs, c.end(err)
}

// write commits ops; with none it still reports a missing session.
func (ss *Sessions) write(ctx context.Context, op, id string, ops []driver.Op) error {
	if len(ops) == 0 {
		return ss.mustExist(ctx, op, id)
	}
	_, err := ss.apply(ctx, op, ops)
	return err
}

// mustExist returns ErrNotFound when session id does not exist.
func (ss *Sessions) mustExist(ctx context.Context, op, id string) error {
	s := ss.s
	ctx, c, err := s.begin(ctx, op, 0)
	if err != nil {
		return c.end(err)
	}
	ok, err := s.conn.Exists(ctx, id)
	if err == nil && !ok {
		err = fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	return c.end(err)
}

// Create records a new session. It returns [ErrAlreadyExists] when id exists.
func (ss *Sessions) Create(ctx context.Context, id string, base SessionBase) error {
	_, err := ss.apply(ctx, "Create", []driver.Op{{Kind: driver.OpCreate, ID: id, Base: base}})
	return err
}

// Exists reports whether session id exists.
func (ss *Sessions) Exists(ctx context.Context, id string) (bool, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "Exists", 0)
	if err != nil {
		return false, c.end(err)
	}
	ok, err := s.conn.Exists(ctx, id)
	return ok, c.end(err)
}

// Count returns the number of sessions.
func (ss *Sessions) Count(ctx context.Context) (uint64, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "Count", 0)
	if err != nil {
		return 0, c.end(err)
	}
	n, err := s.conn.Count(ctx)
	return n, c.end(err)
}

// LoadForEach calls fn for every session, in no particular order (fn may call any
// method of the store, including Delete of that session). Packets are loaded per
// class with [Sessions.PacketsForEach], so a session with a large backlog never has
// to fit in memory.
func (ss *Sessions) LoadForEach(ctx context.Context, fn SessionLoader) error {
	s := ss.s
	ctx, c, err := s.begin(ctx, "LoadForEach", 0)
	if err == nil && fn == nil {
		err = invalidArg("nil SessionLoader")
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.LoadForEach(ctx, func(l *LoadedSession) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(l)
	}))
}

// Delete removes session id and everything it owns: packets of every class,
// subscriptions, state and expiry (retained messages are not the session's).
// Deleting a missing session is a no-op.
func (ss *Sessions) Delete(ctx context.Context, id string) error {
	_, err := ss.apply(ctx, "Delete", []driver.Op{{Kind: driver.OpDelete, ID: id}})
	return err
}

// Apply commits every operation of b atomically: all of them or none. It returns the
// sequence numbers assigned to b's appends, in the order they were added. On error
// nothing of b was written; an operation on a missing session yields [ErrNotFound],
// an update of a missing packet [ErrNotFound]. An empty batch does nothing.
func (ss *Sessions) Apply(ctx context.Context, b *Batch) ([]uint64, error) {
	if b == nil || b.Len() == 0 {
		_, c, err := ss.s.begin(ctx, "Apply", 0)
		if err == nil && b == nil {
			err = invalidArg("nil batch")
		}
		return nil, c.end(err)
	}
	seqs, err := ss.apply(ctx, "Apply", b.Ops())
	if err == nil && len(seqs) != b.Appends() {
		return nil, errWrongSeqs(len(seqs), b.Appends())
	}
	return seqs, err
}

// SubscriptionsStore adds subs to session id. A subscription whose filter is already
// stored replaces it; within one call the last one for a filter wins.
func (ss *Sessions) SubscriptionsStore(ctx context.Context, id string, subs ...Subscription) error {
	ops := make([]driver.Op, len(subs))
	for i, sub := range subs {
		ops[i] = driver.Op{Kind: driver.OpSubscriptionStore, ID: id, Subscription: sub}
	}
	return ss.write(ctx, "SubscriptionsStore", id, ops)
}

// SubscriptionsDelete removes the subscriptions with the given filters; removing one
// that does not exist is a no-op.
func (ss *Sessions) SubscriptionsDelete(ctx context.Context, id string, filters ...string) error {
	ops := make([]driver.Op, len(filters))
	for i, f := range filters {
		ops[i] = driver.Op{Kind: driver.OpSubscriptionDelete, ID: id, Filter: f}
	}
	return ss.write(ctx, "SubscriptionsDelete", id, ops)
}

// SubscriptionsDeleteAll removes every subscription of session id.
func (ss *Sessions) SubscriptionsDeleteAll(ctx context.Context, id string) error {
	_, err := ss.apply(ctx, "SubscriptionsDeleteAll", []driver.Op{{Kind: driver.OpSubscriptionsDeleteAll, ID: id}})
	return err
}

// SubscriptionsLoad returns every subscription of session id, in no particular order
// (an empty slice when it has none).
func (ss *Sessions) SubscriptionsLoad(ctx context.Context, id string) ([]Subscription, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "SubscriptionsLoad", 0)
	if err != nil {
		return nil, c.end(err)
	}
	subs, err := s.conn.SubscriptionsLoad(ctx, id)
	if err == nil && subs == nil {
		subs = []Subscription{}
	}
	return subs, c.end(err)
}

// StateStore replaces the state of session id with a copy of st.
func (ss *Sessions) StateStore(ctx context.Context, id string, st *SessionState) error {
	_, err := ss.apply(ctx, "StateStore", []driver.Op{{Kind: driver.OpStateStore, ID: id, State: st}})
	return err
}

// StateGet returns the state of session id, or [ErrNotFound] when the session or its
// state does not exist.
func (ss *Sessions) StateGet(ctx context.Context, id string) (*SessionState, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "StateGet", 0)
	if err != nil {
		return nil, c.end(err)
	}
	st, err := s.conn.StateGet(ctx, id)
	return st, c.end(err)
}

// StateDelete removes the state of session id; a no-op when there is none.
func (ss *Sessions) StateDelete(ctx context.Context, id string) error {
	_, err := ss.apply(ctx, "StateDelete", []driver.Op{{Kind: driver.OpStateDelete, ID: id}})
	return err
}

// ExpiryStore sets the deadlines of session id. Storing a zero SessionExpiry is the
// same as ExpiryDelete.
func (ss *Sessions) ExpiryStore(ctx context.Context, id string, e SessionExpiry) error {
	_, err := ss.apply(ctx, "ExpiryStore", []driver.Op{{Kind: driver.OpExpiryStore, ID: id, Expiry: e}})
	return err
}

// ExpiryGet returns the deadlines of session id, or [ErrNotFound] when the session or
// its deadlines do not exist.
func (ss *Sessions) ExpiryGet(ctx context.Context, id string) (SessionExpiry, error) {
	s := ss.s
	ctx, c, err := s.begin(ctx, "ExpiryGet", 0)
	if err != nil {
		return SessionExpiry{}, c.end(err)
	}
	e, err := s.conn.ExpiryGet(ctx, id)
	return e, c.end(err)
}

// ExpiryDelete removes the deadlines of session id; a no-op when there are none.
func (ss *Sessions) ExpiryDelete(ctx context.Context, id string) error {
	_, err := ss.apply(ctx, "ExpiryDelete", []driver.Op{{Kind: driver.OpExpiryDelete, ID: id}})
	return err
}

// ExpiredForEach calls fn for every session with a deadline (ExpireAt or WillAt) at
// or before now, earliest deadline first. It touches only those sessions. fn may
// delete the session or change its deadlines.
func (ss *Sessions) ExpiredForEach(ctx context.Context, now time.Time, fn ExpiredLoader) error {
	s := ss.s
	ctx, c, err := s.begin(ctx, "ExpiredForEach", 0)
	if err == nil && fn == nil {
		err = invalidArg("nil ExpiredLoader")
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.ExpiredForEach(ctx, now, func(id string, e SessionExpiry) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(id, e)
	}))
}
