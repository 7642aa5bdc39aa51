package mem

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Exists reports whether session id exists.
func (s *conn) Exists(_ context.Context, id string) (bool, error) {
	if err := s.rlock(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	return s.sessions[id] != nil, nil
}

// Count returns the number of sessions.
func (s *conn) Count(context.Context) (uint64, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return uint64(len(s.sessions)), nil
}

// LoadForEach calls fn for every session that exists when the call starts and still
// exists when its turn comes, in no particular order. No lock is held while fn runs.
func (s *conn) LoadForEach(_ context.Context, fn driver.SessionLoader) error {
	if err := s.rlock(); err != nil {
		return err
	}
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.RUnlock()

	for i, sess := range all {
		all[i] = nil // let a deleted session be collected during a long iteration
		ok, err := s.relock(sess)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		ls := &driver.LoadedSession{
			ID:            sess.id,
			Base:          sess.base,
			State:         sess.state.Clone(),
			Subscriptions: sess.subscriptions(),
		}
		if sess.exp != nil {
			e := sess.exp.e
			ls.Expiry = &e
		}
		s.unlockSession(sess)
		if err := fn(ls); err != nil {
			return err
		}
	}
	return nil
}

// subscriptions returns a copy of the subscriptions of sess, which must be locked.
func (sess *session) subscriptions() []driver.Subscription {
	subs := make([]driver.Subscription, 0, len(sess.subs))
	for _, sub := range sess.subs {
		subs = append(subs, sub)
	}
	return subs
}

// SubscriptionsLoad returns a copy of every subscription of session id.
func (s *conn) SubscriptionsLoad(_ context.Context, id string) ([]driver.Subscription, error) {
	sess, err := s.lockSession(id)
	if err != nil {
		return nil, err
	}
	defer s.unlockSession(sess)
	return sess.subscriptions(), nil
}

// StateGet returns a copy of the state of session id.
func (s *conn) StateGet(_ context.Context, id string) (*driver.SessionState, error) {
	sess, err := s.lockSession(id)
	if err != nil {
		return nil, err
	}
	st := sess.state
	s.unlockSession(sess)
	if st == nil {
		return nil, fmt.Errorf("mem: state of session %q: %w", id, driver.ErrNotFound)
	}
	return st.Clone(), nil // stored states are never mutated: copy outside the lock
}
