package mem

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Name is the driver name the package registers, and so the scheme of its URLs
// ("mem://").
const Name = "mem"

func init() {
	persistence.Register(Name, Driver{})
}

// Driver is the in-memory driver, registered as "mem".
type Driver struct{}

// OpenConnector accepts exactly "mem://": a host, path, user, fragment or any query
// option is refused with an error matching [persistence.ErrInvalidConfig], since
// nothing about an in-memory store can be configured.
func (Driver) OpenConnector(u *url.URL) (driver.Connector, error) {
	bad := func(what, val string) error {
		return fmt.Errorf("%w: mem: store URL %q has %s %q, but an in-memory store takes none; use \"mem://\"",
			driver.ErrInvalidConfig, u.Redacted(), what, val)
	}
	switch {
	case u.Opaque != "":
		return nil, bad("opaque part", u.Opaque)
	case u.User != nil:
		return nil, bad("user info", u.User.Username())
	case u.Host != "":
		return nil, bad("host", u.Host)
	case u.Path != "":
		return nil, bad("path", u.Path)
	case u.Fragment != "":
		return nil, bad("fragment", u.Fragment)
	}
	if err := driver.NewOptions(u.Query()).Err(); err != nil {
		return nil, fmt.Errorf("mem: %w", err)
	}
	return Config{}, nil
}

// Config opens in-memory stores without a URL:
//
//	store, err := persistence.OpenConnector(ctx, mem.Config{})
//
// Every Connect returns a new, empty store.
type Config struct{}

// Connect returns a new, empty store whose creation time is read from env.Clock.
func (Config) Connect(_ context.Context, env driver.Env) (driver.Conn, error) {
	return &conn{
		sessions: make(map[string]*session),
		retained: make(map[string]*driver.PersistedPacket),
		retIdx:   new(topicTrie),
		exp:      newExpIndex(),
		info: driver.SystemInfo{
			SchemaVersion: driver.SchemaVersion,
			CreatedAt:     env.Clock.Now(),
			SDKVersion:    driver.SDKVersion,
			Driver:        Name,
		},
	}, nil
}

// conn is an open store. Lock order: mu, then one session's mu, then expMu. retMu is
// independent of the others (only Close holds it together with mu).
type conn struct {
	// mu guards the sessions map and the dead flag of every session. Calls on one
	// existing session hold it shared plus that session's mutex; writes that create
	// or delete sessions or touch several, and Close, hold it exclusively (and then
	// need no session mutex).
	mu       sync.RWMutex
	sessions map[string]*session

	// closed is set by Close with mu and retMu held exclusively: the maps are gone
	// then, and a call racing with Close must fail instead of using them.
	closed bool

	// seq is the store-wide packet sequence counter; it is advanced with the target
	// session locked, so per-queue order equals seq order.
	seq atomic.Uint64

	// expMu guards exp and every session's exp field changes.
	expMu sync.Mutex
	exp   *expIndex

	retMu    sync.RWMutex
	retained map[string]*driver.PersistedPacket
	retIdx   *topicTrie // the topics of retained, by level

	info driver.SystemInfo // immutable
}

// session is one stored session. Its fields are guarded by mu together with the
// store's mu held shared, or by the store's mu held exclusively alone. id and base
// never change.
type session struct {
	mu     sync.Mutex
	id     string
	base   driver.SessionBase
	dead   bool // deleted (or the store closed); written with conn.mu held exclusively
	queues [4]queue
	subs   map[string]driver.Subscription
	state  *driver.SessionState
	exp    *expNode // nil when the session has no deadline; changed under expMu too
}

// Close discards every stored value after the calls in progress finish.
func (s *conn) Close() error {
	s.mu.Lock()
	s.retMu.Lock()
	s.closed = true
	for _, sess := range s.sessions {
		sess.dead = true
	}
	s.sessions, s.retained, s.retIdx = nil, nil, nil
	s.expMu.Lock()
	s.exp = newExpIndex()
	s.expMu.Unlock()
	s.retMu.Unlock()
	s.mu.Unlock()
	return nil
}

// Info returns the store's metadata, fixed when it was opened.
func (s *conn) Info(context.Context) (driver.SystemInfo, error) { return s.info, nil }

// rlock locks mu shared, unless the store is closed.
func (s *conn) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	return nil
}

// lockSession returns session id locked: mu shared and the session's mu. Release
// with unlockSession.
func (s *conn) lockSession(id string) (*session, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	sess := s.sessions[id]
	if sess == nil {
		s.mu.RUnlock()
		return nil, notFoundSession(id)
	}
	sess.mu.Lock()
	return sess, nil
}

func (s *conn) unlockSession(sess *session) {
	sess.mu.Unlock()
	s.mu.RUnlock()
}

// relock locks sess again for the next step of an iteration. ok is false (and
// nothing is locked) when the store was closed (err is set) or sess was deleted.
func (s *conn) relock(sess *session) (ok bool, err error) {
	if err := s.rlock(); err != nil {
		return false, err
	}
	if sess.dead {
		s.mu.RUnlock()
		return false, nil
	}
	sess.mu.Lock()
	return true, nil
}

// errClosed is returned by a call that raced with Close.
var errClosed = fmt.Errorf("mem: %w", driver.ErrClosed)

func notFoundSession(id string) error {
	return fmt.Errorf("mem: session %q: %w", id, driver.ErrNotFound)
}

func notFoundPacket(id string, c driver.PacketClass, seq uint64) error {
	return fmt.Errorf("mem: session %q: %s packet %d: %w", id, c, seq, driver.ErrNotFound)
}

var (
	_ driver.Driver    = Driver{}
	_ driver.Connector = Config{}
	_ driver.Conn      = (*conn)(nil)
)
