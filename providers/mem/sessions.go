package mem

import (
	"context"
	"fmt"
	"sync"

	"github.com/mqttstore/mqttstore/persistence"
)

// session is one stored session. Its fields are guarded by mu together with the
// store's mu held shared, or by the store's mu held exclusively alone. id and base
// never change.
type session struct {
	mu     sync.Mutex
	id     string
	base   persistence.SessionBase
	dead   bool // deleted (or the store closed); written with store.mu held exclusively
	queues [4]queue
	subs   map[string]persistence.Subscription
	state  *persistence.SessionState
	exp    *expNode // nil when the session has no deadline; changed under expMu too
}

// sessions implements persistence.Sessions.
type sessions store

func (ss *sessions) st() *store { return (*store)(ss) }

// lockSession checks ctx and the store, then returns session id locked: the store's
// mu shared and the session's mu. Release with unlockSession.
func (s *store) lockSession(ctx context.Context, id string) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return nil, errClosed
	}
	sess := s.sessions[id]
	if sess == nil {
		s.mu.RUnlock()
		return nil, notFoundSession(id)
	}
	sess.mu.Lock()
	return sess, nil
}

func (s *store) unlockSession(sess *session) {
	sess.mu.Unlock()
	s.mu.RUnlock()
}

// relock locks sess again for the next step of an iteration. ok is false (and
// nothing is locked) when the store was closed (err is set) or sess was deleted.
func (s *store) relock(sess *session) (ok bool, err error) {
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return false, errClosed
	}
	if sess.dead {
		s.mu.RUnlock()
		return false, nil
	}
	sess.mu.Lock()
	return true, nil
}

// Create records a new session; it returns an error matching
// [persistence.ErrAlreadyExists] when id exists.
func (ss *sessions) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := ss.st()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	if s.sessions[id] != nil {
		return fmt.Errorf("mem: session %q: %w", id, persistence.ErrAlreadyExists)
	}
	s.sessions[id] = &session{id: id, base: base}
	return nil
}

// Exists reports whether session id exists.
func (ss *sessions) Exists(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s := ss.st()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return false, errClosed
	}
	return s.sessions[id] != nil, nil
}

// Count returns the number of sessions.
func (ss *sessions) Count(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s := ss.st()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, errClosed
	}
	return uint64(len(s.sessions)), nil
}

// Delete removes session id with its packets, subscriptions, state and deadlines. A
// missing session is a no-op.
func (ss *sessions) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := ss.st()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	s.deleteLocked(id)
	return nil
}

// deleteLocked removes session id; s.mu must be held exclusively.
func (s *store) deleteLocked(id string) {
	sess := s.sessions[id]
	if sess == nil {
		return
	}
	delete(s.sessions, id)
	sess.dead = true
	if sess.exp != nil {
		s.expMu.Lock()
		s.exp.remove(sess.exp)
		s.expMu.Unlock()
		sess.exp = nil
	}
}

// LoadForEach calls fn for every session that exists when the call starts and still
// exists when its turn comes, in no particular order. No lock is held while fn runs.
func (ss *sessions) LoadForEach(ctx context.Context, fn persistence.SessionLoader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("mem: %w: nil SessionLoader", persistence.ErrInvalidArgument)
	}
	s := ss.st()
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return errClosed
	}
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.RUnlock()

	for i, sess := range all {
		all[i] = nil // let a deleted session be collected during a long iteration
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := s.relock(sess)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		ls := sess.load()
		s.unlockSession(sess)
		if err := fn(ls); err != nil {
			return iterResult(err)
		}
	}
	return nil
}

// load returns a copy of everything but the packets of sess, which must be locked.
func (sess *session) load() *persistence.LoadedSession {
	ls := &persistence.LoadedSession{
		ID:            sess.id,
		Base:          sess.base,
		State:         sess.state.Clone(),
		Subscriptions: sess.subscriptions(),
	}
	if sess.exp != nil {
		e := sess.exp.e
		ls.Expiry = &e
	}
	return ls
}

// subscriptions returns a copy of the subscriptions of sess, which must be locked.
func (sess *session) subscriptions() []persistence.Subscription {
	subs := make([]persistence.Subscription, 0, len(sess.subs))
	for _, sub := range sess.subs {
		subs = append(subs, sub)
	}
	return subs
}

// SubscriptionsStore adds subs to session id, replacing stored subscriptions with
// the same filter; within one call the last one for a filter wins. Every
// subscription is validated before any is stored.
func (ss *sessions) SubscriptionsStore(ctx context.Context, id string, subs ...persistence.Subscription) error {
	for i := range subs {
		if err := persistence.ValidateSubscription(subs[i]); err != nil {
			return fmt.Errorf("mem: %w", err)
		}
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		sess.storeSubscription(sub)
	}
	s.unlockSession(sess)
	return nil
}

func (sess *session) storeSubscription(sub persistence.Subscription) {
	if sess.subs == nil {
		sess.subs = make(map[string]persistence.Subscription)
	}
	sess.subs[sub.Filter] = sub
}

// SubscriptionsDelete removes the subscriptions with the given filters; a filter
// that is not stored is a no-op, an empty one is an invalid argument.
func (ss *sessions) SubscriptionsDelete(ctx context.Context, id string, filters ...string) error {
	for _, f := range filters {
		if f == "" {
			return fmt.Errorf("mem: %w: empty topic filter", persistence.ErrInvalidArgument)
		}
	}
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	for _, f := range filters {
		delete(sess.subs, f)
	}
	s.unlockSession(sess)
	return nil
}

// SubscriptionsDeleteAll removes every subscription of session id.
func (ss *sessions) SubscriptionsDeleteAll(ctx context.Context, id string) error {
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	sess.subs = nil
	s.unlockSession(sess)
	return nil
}

// SubscriptionsLoad returns a copy of every subscription of session id, in no
// particular order (an empty, non-nil slice when it has none).
func (ss *sessions) SubscriptionsLoad(ctx context.Context, id string) ([]persistence.Subscription, error) {
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return nil, err
	}
	subs := sess.subscriptions()
	s.unlockSession(sess)
	return subs, nil
}

// StateStore replaces the state of session id with a copy of st.
func (ss *sessions) StateStore(ctx context.Context, id string, st *persistence.SessionState) error {
	if err := validateState(st); err != nil {
		return err
	}
	c := st.Clone()
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	sess.state = c
	s.unlockSession(sess)
	return nil
}

func validateState(st *persistence.SessionState) error {
	if st == nil {
		return fmt.Errorf("mem: %w: nil session state", persistence.ErrInvalidArgument)
	}
	if st.Will != nil {
		if err := persistence.ValidatePacket(st.Will); err != nil {
			return fmt.Errorf("mem: will: %w", err)
		}
	}
	return nil
}

// StateGet returns a copy of the state of session id, or an error matching
// [persistence.ErrNotFound] when the session or its state does not exist.
func (ss *sessions) StateGet(ctx context.Context, id string) (*persistence.SessionState, error) {
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return nil, err
	}
	st := sess.state
	s.unlockSession(sess)
	if st == nil {
		return nil, fmt.Errorf("mem: state of session %q: %w", id, persistence.ErrNotFound)
	}
	// Stored states are never mutated (StateStore replaces the pointer), so the
	// copy can be made after unlocking.
	return st.Clone(), nil
}

// StateDelete removes the state of session id; a no-op when there is none.
func (ss *sessions) StateDelete(ctx context.Context, id string) error {
	s := ss.st()
	sess, err := s.lockSession(ctx, id)
	if err != nil {
		return err
	}
	sess.state = nil
	s.unlockSession(sess)
	return nil
}
