package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// sessions implements persistence.Sessions.
type sessions Store

func (ss *sessions) st() *Store { return (*Store)(ss) }

// maxReported bounds the broken entries an iteration lists in its error.
const maxReported = 16

// brokenList collects the broken entries an iteration skipped: the iteration goes
// on with the others and returns them all (each matching persistence.ErrBrokenEntry)
// at the end.
type brokenList struct {
	errs []error
	n    int
}

func (b *brokenList) add(err error) {
	b.n++
	if len(b.errs) < maxReported {
		b.errs = append(b.errs, err)
	}
}

func (b *brokenList) err() error {
	if b.n == 0 {
		return nil
	}
	if b.n > len(b.errs) {
		b.errs = append(b.errs, fmt.Errorf("%w: and %d more", persistence.ErrBrokenEntry, b.n-len(b.errs)))
	}
	return errors.Join(b.errs...)
}

// iterResult maps a callback's error to the iteration's result.
func iterResult(err error) error {
	if errors.Is(err, persistence.ErrStopIteration) {
		return nil
	}
	return err
}

// Create records a new session; persistence.ErrAlreadyExists when id exists.
func (ss *sessions) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	return ss.st().write(ctx, func(w *writer) error { return w.create(id, base) })
}

// Exists reports whether session id exists.
func (ss *sessions) Exists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := ss.st().view(ctx, "exists", func(tx Tx) error {
		v, err := tx.Get(headerKey(id))
		ok = v != nil
		return err
	})
	return ok, err
}

// Count returns the number of sessions, kept as a counter record.
func (ss *sessions) Count(ctx context.Context) (uint64, error) {
	return ss.st().counter(ctx, keySessions, "session count")
}

func (s *Store) counter(ctx context.Context, key []byte, what string) (uint64, error) {
	var n uint64
	err := s.view(ctx, what, func(tx Tx) error {
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		n, err = readU64(v, what)
		return err
	})
	return n, err
}

// Delete removes session id and everything it owns; a missing session is a no-op.
func (ss *sessions) Delete(ctx context.Context, id string) error {
	return ss.st().write(ctx, func(w *writer) error { return w.deleteSession(id) })
}

// loadSession reads the state and expiry of the session whose base blob is v.
// Broken blobs make the session broken as a whole.
func loadSession(tx Tx, id string, v []byte) (*persistence.LoadedSession, error) {
	base, err := persistence.DecodeSessionBase(v)
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", id, err)
	}
	ls := &persistence.LoadedSession{ID: id, Base: base, Subscriptions: []persistence.Subscription{}}
	if v, err := tx.Get(stateKey(id)); err != nil {
		return nil, err
	} else if v != nil {
		if ls.State, err = persistence.DecodeState(v); err != nil {
			return nil, fmt.Errorf("state of session %q: %w", id, err)
		}
	}
	if v, err := tx.Get(expiryKey(id)); err != nil {
		return nil, err
	} else if v != nil {
		e, err := persistence.DecodeExpiry(v)
		if err != nil {
			return nil, fmt.Errorf("expiry of session %q: %w", id, err)
		}
		ls.Expiry = &e
	}
	return ls, nil
}

func loadSubs(tx Tx, id string) ([]persistence.Subscription, error) {
	subs := []persistence.Subscription{}
	prefix := subPrefix(id)
	err := tx.Iterate(prefix, prefix, func(k, v []byte) (bool, error) {
		sub, err := persistence.DecodeSubscription(v)
		if err != nil {
			return false, fmt.Errorf("subscription %q of session %q: %w", k[len(prefix):], id, err)
		}
		subs = append(subs, sub)
		return true, nil
	})
	return subs, err
}

// after returns the smallest key greater than k.
func after(k []byte) []byte { return append(append([]byte(nil), k...), 0) }

// sessionItem is one session of a LoadForEach page.
type sessionItem struct {
	key    []byte
	ls     *persistence.LoadedSession
	broken error
}

// readSessionPage reads up to pageSize sessions from start, with their state and
// expiry, then their subscriptions in one ordered scan: session and subscription
// keys both start with the length-prefixed id, so the subscriptions of a page are
// one contiguous, identically ordered range.
func (s *Store) readSessionPage(tx Tx, start []byte) ([]sessionItem, error) {
	prefix := []byte{tagSession}
	var page []sessionItem
	byID := map[string]*sessionItem{}
	err := tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
		it := sessionItem{key: append([]byte(nil), k...)}
		id, rest, err := parseLenID(k)
		if err == nil && len(rest) != 0 {
			err = fmt.Errorf("%w: session key with %d trailing bytes", persistence.ErrBrokenEntry, len(rest))
		}
		if err == nil {
			it.ls, err = loadSession(tx, id, v)
		}
		if err != nil {
			if !errors.Is(err, persistence.ErrBrokenEntry) {
				return false, err
			}
			it.broken = fmt.Errorf("%s: %w", s.name, err)
		}
		page = append(page, it)
		return len(page) < pageSize, nil
	})
	if err != nil || len(page) == 0 {
		return page, err
	}
	for i := range page {
		if page[i].ls != nil {
			byID[page[i].ls.ID] = &page[i]
		}
	}
	// The subscription range of the page: from the first session's prefix to the end
	// of the last one's.
	first := append([]byte{tagSub}, page[0].key[1:]...)
	last := append([]byte{tagSub}, page[len(page)-1].key[1:]...)
	err = tx.Iterate([]byte{tagSub}, first, func(k, v []byte) (bool, error) {
		if bytes.Compare(k, last) > 0 && !bytes.HasPrefix(k, last) {
			return false, nil
		}
		id, filter, err := parseLenID(k)
		if err != nil {
			return true, nil // not a key of this page's sessions (cannot happen)
		}
		it := byID[id]
		if it == nil || it.broken != nil {
			return true, nil
		}
		sub, err := persistence.DecodeSubscription(v)
		if err != nil {
			it.broken = fmt.Errorf("%s: subscription %q of session %q: %w", s.name, filter, id, err)
			return true, nil
		}
		it.ls.Subscriptions = append(it.ls.Subscriptions, sub)
		return true, nil
	})
	return page, err
}

// LoadForEach calls fn for every session, in key order, reading pageSize sessions per
// read transaction; fn runs with no transaction open. A page read before a write
// committed is read again from the session about to be delivered, so a session
// deleted meanwhile is not delivered. A session with a broken blob is skipped and
// reported (persistence.ErrBrokenEntry) when the iteration ends.
func (ss *sessions) LoadForEach(ctx context.Context, fn persistence.SessionLoader) error {
	s := ss.st()
	if fn == nil {
		return fmt.Errorf("%s: %w: nil SessionLoader", s.name, persistence.ErrInvalidArgument)
	}
	var broken brokenList
	start := []byte{tagSession}
	for {
		var page []sessionItem
		commits := s.commits.Load()
		err := s.view(ctx, "load sessions", func(tx Tx) error {
			var err error
			page, err = s.readSessionPage(tx, start)
			return err
		})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return broken.err()
		}
		reread := false
		for i, it := range page {
			if i > 0 && s.commits.Load() != commits {
				start, reread = it.key, true // read again from here
				break
			}
			start = after(it.key)
			if it.broken != nil {
				broken.add(it.broken)
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(it.ls); err != nil {
				return iterResult(err)
			}
		}
		if !reread && len(page) < pageSize {
			return broken.err()
		}
	}
}

// Apply commits every operation of b atomically, in one write transaction shared
// with concurrent writers.
func (ss *sessions) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	s := ss.st()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%s: %w: nil batch", s.name, persistence.ErrInvalidArgument)
	}
	ops := b.Ops()
	for i := range ops {
		if err := ops[i].Validate(); err != nil {
			return nil, fmt.Errorf("%s: batch operation %d: %w", s.name, i, err)
		}
	}
	var out []uint64
	err := s.write(ctx, func(w *writer) error {
		var seqs []uint64
		if n := b.Appends(); n > 0 {
			seqs = make([]uint64, 0, n)
		}
		for i := range ops {
			var err error
			if seqs, err = w.apply(&ops[i], seqs); err != nil {
				return fmt.Errorf("%s: batch operation %d: %w", s.name, i, err)
			}
		}
		out = seqs
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SubscriptionsStore adds subs to session id; within one call the last one for a
// filter wins.
func (ss *sessions) SubscriptionsStore(ctx context.Context, id string, subs ...persistence.Subscription) error {
	s := ss.st()
	for i := range subs {
		if err := persistence.ValidateSubscription(subs[i]); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	subs = append([]persistence.Subscription(nil), subs...)
	return s.write(ctx, func(w *writer) error { return w.storeSubs(id, subs...) })
}

// SubscriptionsDelete removes the subscriptions with the given filters.
func (ss *sessions) SubscriptionsDelete(ctx context.Context, id string, filters ...string) error {
	s := ss.st()
	for _, f := range filters {
		if f == "" {
			return fmt.Errorf("%s: %w: empty topic filter", s.name, persistence.ErrInvalidArgument)
		}
	}
	filters = append([]string(nil), filters...)
	return s.write(ctx, func(w *writer) error { return w.deleteSubFilters(id, filters...) })
}

// SubscriptionsDeleteAll removes every subscription of session id.
func (ss *sessions) SubscriptionsDeleteAll(ctx context.Context, id string) error {
	return ss.st().write(ctx, func(w *writer) error { return w.deleteAllSubs(id) })
}

// SubscriptionsLoad returns every subscription of session id, in filter order.
func (ss *sessions) SubscriptionsLoad(ctx context.Context, id string) ([]persistence.Subscription, error) {
	s := ss.st()
	var subs []persistence.Subscription
	err := s.view(ctx, "load subscriptions", func(tx Tx) error {
		if _, ok, err := readHeader(tx, id); err != nil || !ok {
			if err == nil {
				err = s.notFoundSession(id)
			}
			return err
		}
		var err error
		subs, err = loadSubs(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return subs, nil
}

// StateStore replaces the state of session id.
func (ss *sessions) StateStore(ctx context.Context, id string, st *persistence.SessionState) error {
	s := ss.st()
	if st == nil {
		return fmt.Errorf("%s: %w: nil session state", s.name, persistence.ErrInvalidArgument)
	}
	if st.Will != nil {
		if err := persistence.ValidatePacket(st.Will); err != nil {
			return fmt.Errorf("%s: will: %w", s.name, err)
		}
	}
	st = st.Clone()
	return s.write(ctx, func(w *writer) error { return w.storeState(id, st) })
}

// getBlob reads the blob at key k of an existing session id: nil when absent.
func (s *Store) getBlob(ctx context.Context, id string, k []byte, what string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, what, func(tx Tx) error {
		if _, ok, err := readHeader(tx, id); err != nil || !ok {
			if err == nil {
				err = s.notFoundSession(id)
			}
			return err
		}
		v, err := tx.Get(k)
		if v != nil {
			out = append([]byte(nil), v...)
		}
		return err
	})
	return out, err
}

// StateGet returns the state of session id, or persistence.ErrNotFound.
func (ss *sessions) StateGet(ctx context.Context, id string) (*persistence.SessionState, error) {
	s := ss.st()
	v, err := s.getBlob(ctx, id, stateKey(id), "get state")
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%s: state of session %q: %w", s.name, id, persistence.ErrNotFound)
	}
	st, err := persistence.DecodeState(v)
	if err != nil {
		return nil, fmt.Errorf("%s: state of session %q: %w", s.name, id, err)
	}
	return st, nil
}

// StateDelete removes the state of session id.
func (ss *sessions) StateDelete(ctx context.Context, id string) error {
	return ss.st().write(ctx, func(w *writer) error { return w.deleteState(id) })
}

// ExpiryStore sets the deadlines of session id; a zero e removes them.
func (ss *sessions) ExpiryStore(ctx context.Context, id string, e persistence.SessionExpiry) error {
	return ss.st().write(ctx, func(w *writer) error { return w.storeExpiry(id, e) })
}

// ExpiryGet returns the deadlines of session id, or persistence.ErrNotFound.
func (ss *sessions) ExpiryGet(ctx context.Context, id string) (persistence.SessionExpiry, error) {
	s := ss.st()
	v, err := s.getBlob(ctx, id, expiryKey(id), "get expiry")
	if err != nil {
		return persistence.SessionExpiry{}, err
	}
	if v == nil {
		return persistence.SessionExpiry{}, fmt.Errorf("%s: expiry of session %q: %w", s.name, id, persistence.ErrNotFound)
	}
	e, err := persistence.DecodeExpiry(v)
	if err != nil {
		return persistence.SessionExpiry{}, fmt.Errorf("%s: expiry of session %q: %w", s.name, id, err)
	}
	return e, nil
}

// ExpiryDelete removes the deadlines of session id.
func (ss *sessions) ExpiryDelete(ctx context.Context, id string) error {
	return ss.st().write(ctx, func(w *writer) error { return w.storeExpiry(id, persistence.SessionExpiry{}) })
}

// ExpiredForEach walks the expiry index from its start and stops at the first
// deadline after now, so sessions that are not due are never read. Entries stored
// after the call started (their stamp is newer) are left for the next call, so each
// session is visited at most once; fn runs with no transaction open.
func (ss *sessions) ExpiredForEach(ctx context.Context, now time.Time, fn persistence.ExpiredLoader) error {
	s := ss.st()
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%s: %w: nil ExpiredLoader", s.name, persistence.ErrInvalidArgument)
	}
	limit := s.seq.Load()
	nowKey := deadlineBytes(now)
	type item struct {
		key []byte
		id  string
		e   persistence.SessionExpiry
		ok  bool
		bad error
	}
	var broken brokenList
	prefix := []byte{tagExpIndex}
	start := prefix
	for {
		var page []item
		commits := s.commits.Load()
		err := s.view(ctx, "expired sessions", func(tx Tx) error {
			page = page[:0]
			return tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
				if len(k) < 13 || string(k[1:13]) > string(nowKey[:]) {
					return false, nil
				}
				stamp, id, err := parseExpIndexKey(k)
				it := item{key: append([]byte(nil), k...), id: id}
				if err == nil && stamp > limit {
					page = append(page, it) // skipped, but the cursor moves past it
					return len(page) < pageSize, nil
				}
				if err == nil {
					it.e, err = persistence.DecodeExpiry(v)
				}
				if err != nil {
					it.bad = fmt.Errorf("%s: expiry index entry of session %q: %w", s.name, id, err)
				} else {
					it.ok = true
				}
				page = append(page, it)
				return len(page) < pageSize, nil
			})
		})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return broken.err()
		}
		reread := false
		for i, it := range page {
			if i > 0 && s.commits.Load() != commits {
				start, reread = it.key, true
				break
			}
			start = after(it.key)
			if it.bad != nil {
				broken.add(it.bad)
			}
			if !it.ok {
				continue
			}
			if err := fn(it.id, it.e); err != nil {
				return iterResult(err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !reread && len(page) < pageSize {
			return broken.err()
		}
	}
}
