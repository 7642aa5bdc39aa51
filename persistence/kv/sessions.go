package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Exists reports whether session id exists.
func (s *Store) Exists(_ context.Context, id string) (bool, error) {
	var ok bool
	err := s.view("exists", func(tx Tx) error {
		v, err := tx.Get(headerKey(id))
		ok = v != nil
		return err
	})
	return ok, err
}

// Count returns the number of sessions, kept as a counter record.
func (s *Store) Count(context.Context) (uint64, error) {
	return s.counter(keySessions, "session count")
}

func (s *Store) counter(key []byte, what string) (uint64, error) {
	var n uint64
	err := s.view(what, func(tx Tx) error {
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		n, err = readU64(v, what)
		return err
	})
	return n, err
}

// loadSession reads the state and expiry of the session whose base blob is v.
// Broken blobs make the session broken as a whole.
func loadSession(tx Tx, id string, v []byte) (*driver.LoadedSession, error) {
	base, err := driver.DecodeSessionBase(v)
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", id, err)
	}
	ls := &driver.LoadedSession{ID: id, Base: base, Subscriptions: []driver.Subscription{}}
	if v, err := tx.Get(stateKey(id)); err != nil {
		return nil, err
	} else if v != nil {
		if ls.State, err = driver.DecodeState(v); err != nil {
			return nil, fmt.Errorf("state of session %q: %w", id, err)
		}
	}
	if v, err := tx.Get(expiryKey(id)); err != nil {
		return nil, err
	} else if v != nil {
		e, err := driver.DecodeExpiry(v)
		if err != nil {
			return nil, fmt.Errorf("expiry of session %q: %w", id, err)
		}
		ls.Expiry = &e
	}
	return ls, nil
}

func loadSubs(tx Tx, id string) ([]driver.Subscription, error) {
	subs := []driver.Subscription{}
	prefix := subPrefix(id)
	err := tx.Iterate(prefix, prefix, func(k, v []byte) (bool, error) {
		sub, err := driver.DecodeSubscription(v)
		if err != nil {
			return false, fmt.Errorf("subscription %q of session %q: %w", k[len(prefix):], id, err)
		}
		subs = append(subs, sub)
		return true, nil
	})
	return subs, err
}

// sessionItem is one session of a LoadForEach page.
type sessionItem struct {
	key    []byte
	ls     *driver.LoadedSession
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
			err = fmt.Errorf("%w: session key with %d trailing bytes", driver.ErrBrokenEntry, len(rest))
		}
		if err == nil {
			it.ls, err = loadSession(tx, id, v)
		}
		if err != nil {
			if !errors.Is(err, driver.ErrBrokenEntry) {
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
		sub, err := driver.DecodeSubscription(v)
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
// read transaction (see pager). A session with a broken blob is skipped and
// reported (driver.ErrBrokenEntry) when the iteration ends.
func (s *Store) LoadForEach(_ context.Context, fn driver.SessionLoader) error {
	var broken brokenList
	p := pager[sessionItem, []byte]{
		what: "load sessions",
		read: func(tx Tx, from []byte) ([]sessionItem, []byte, bool, error) {
			page, err := s.readSessionPage(tx, from)
			next, more := keyCursor(page, func(it sessionItem) []byte { return it.key })
			return page, next, more, err
		},
		at: func(it sessionItem) []byte { return it.key },
		visit: func(it sessionItem) error {
			if it.broken != nil {
				broken.add(it.broken)
				return nil
			}
			return fn(it.ls)
		},
	}
	if err := p.run(s, []byte{tagSession}); err != nil {
		return err
	}
	return broken.err()
}

// SubscriptionsLoad returns every subscription of session id, in filter order.
func (s *Store) SubscriptionsLoad(_ context.Context, id string) ([]driver.Subscription, error) {
	var subs []driver.Subscription
	err := s.view("load subscriptions", func(tx Tx) error {
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

// getBlob reads the blob at key k of an existing session id: nil when absent.
func (s *Store) getBlob(id string, k []byte, what string) ([]byte, error) {
	var out []byte
	err := s.view(what, func(tx Tx) error {
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

// StateGet returns the state of session id, or driver.ErrNotFound.
func (s *Store) StateGet(_ context.Context, id string) (*driver.SessionState, error) {
	v, err := s.getBlob(id, stateKey(id), "get state")
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%s: state of session %q: %w", s.name, id, driver.ErrNotFound)
	}
	st, err := driver.DecodeState(v)
	if err != nil {
		return nil, fmt.Errorf("%s: state of session %q: %w", s.name, id, err)
	}
	return st, nil
}

// ExpiryGet returns the deadlines of session id, or driver.ErrNotFound.
func (s *Store) ExpiryGet(_ context.Context, id string) (driver.SessionExpiry, error) {
	v, err := s.getBlob(id, expiryKey(id), "get expiry")
	if err != nil {
		return driver.SessionExpiry{}, err
	}
	if v == nil {
		return driver.SessionExpiry{}, fmt.Errorf("%s: expiry of session %q: %w", s.name, id, driver.ErrNotFound)
	}
	e, err := driver.DecodeExpiry(v)
	if err != nil {
		return driver.SessionExpiry{}, fmt.Errorf("%s: expiry of session %q: %w", s.name, id, err)
	}
	return e, nil
}

// expiredItem is one entry of the expiry index read by ExpiredForEach.
type expiredItem struct {
	key []byte
	id  string
	e   driver.SessionExpiry
	ok  bool  // due and stored before the call started: delivered
	bad error // a broken entry
}

// ExpiredForEach walks the expiry index from its start and stops at the first
// deadline after now, so sessions that are not due are never read. Entries stored
// after the call started (their stamp is newer) are left for the next call, so each
// session is visited at most once; fn runs with no transaction open.
func (s *Store) ExpiredForEach(_ context.Context, now time.Time, fn driver.ExpiredLoader) error {
	limit := s.seq.Load()
	nowKey := deadlineBytes(now)
	prefix := []byte{tagExpIndex}
	var broken brokenList
	p := pager[expiredItem, []byte]{
		what: "expired sessions",
		read: func(tx Tx, from []byte) ([]expiredItem, []byte, bool, error) {
			var page []expiredItem
			err := tx.Iterate(prefix, from, func(k, v []byte) (bool, error) {
				if len(k) < 13 || string(k[1:13]) > string(nowKey[:]) {
					return false, nil
				}
				stamp, id, err := parseExpIndexKey(k)
				it := expiredItem{key: append([]byte(nil), k...), id: id}
				switch {
				case err == nil && stamp > limit:
					// Skipped, but the cursor moves past it.
				case err == nil:
					if it.e, err = driver.DecodeExpiry(v); err == nil {
						it.ok = true
						break
					}
					fallthrough
				default:
					it.bad = fmt.Errorf("%s: expiry index entry of session %q: %w", s.name, id, err)
				}
				page = append(page, it)
				return len(page) < pageSize, nil
			})
			next, more := keyCursor(page, func(it expiredItem) []byte { return it.key })
			return page, next, more, err
		},
		at: func(it expiredItem) []byte { return it.key },
		visit: func(it expiredItem) error {
			if it.bad != nil {
				broken.add(it.bad)
			}
			if !it.ok {
				return nil
			}
			return fn(it.id, it.e)
		},
	}
	if err := p.run(s, prefix); err != nil {
		return err
	}
	return broken.err()
}
