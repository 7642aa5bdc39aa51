package mem

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/mqttstore/mqttstore/persistence"
)

// Name is the driver name the package registers, and so the scheme of its URLs
// ("mem://").
const Name = "mem"

func init() {
	persistence.Register(Name, Driver{})
}

// Driver opens in-memory stores. It is registered as "mem"; every Open returns a new,
// empty store. Use it through [persistence.Open] with the URL "mem://".
type Driver struct{}

// Open returns a new, empty store. cfg.URL must be exactly "mem://": a host, path,
// user, fragment or any query option is refused with an error matching
// [persistence.ErrInvalidConfig], since nothing about an in-memory store can be
// configured.
func (Driver) Open(ctx context.Context, cfg persistence.Config) (persistence.Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	clock := cfg.Clock
	if clock == nil {
		clock = persistence.SystemClock{}
	}
	return New(clock), nil
}

func checkURL(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("%w: mem: nil store URL; use \"mem://\"", persistence.ErrInvalidConfig)
	}
	bad := func(what, val string) error {
		return fmt.Errorf("%w: mem: store URL %q has %s %q, but an in-memory store takes none; use \"mem://\"",
			persistence.ErrInvalidConfig, u.Redacted(), what, val)
	}
	switch {
	case u.Opaque != "":
		return bad("opaque part", u.Opaque)
	case u.User != nil:
		return bad("user info", u.User.Username())
	case u.Host != "":
		return bad("host", u.Host)
	case u.Path != "":
		return bad("path", u.Path)
	case u.Fragment != "":
		return bad("fragment", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: mem: cannot parse the options of store URL %q: %v", persistence.ErrInvalidConfig, u.Redacted(), err)
	}
	if err := persistence.NewOptions(q).Err(); err != nil {
		return fmt.Errorf("mem: %w", err)
	}
	return nil
}

// New returns a new, empty in-memory store whose creation time (see
// [persistence.SystemInfo]) is read from clock; a nil clock means the system clock.
// It is what the registered driver's Open returns, for callers that want a store
// without going through the registry.
func New(clock persistence.Clock) persistence.Provider {
	if clock == nil {
		clock = persistence.SystemClock{}
	}
	return &store{
		sessions: make(map[string]*session),
		retained: make(map[string]*persistence.PersistedPacket),
		retIdx:   new(topicTrie),
		exp:      newExpIndex(),
		info: persistence.SystemInfo{
			SchemaVersion: persistence.SchemaVersion,
			CreatedAt:     clock.Now(),
			SDKVersion:    persistence.SDKVersion,
			Driver:        Name,
		},
	}
}

// store is the provider. Lock order: mu, then one session's mu, then expMu. retMu is
// independent of the others (only Close holds it together with mu).
type store struct {
	// mu guards the sessions map and the dead flag of every session. Operations on
	// one existing session hold it shared plus that session's mutex; Create, Delete,
	// Apply and Close hold it exclusively (and then need no session mutex).
	mu       sync.RWMutex
	sessions map[string]*session

	// closed is set with mu and retMu both held exclusively, so reading it under
	// either lock is consistent; a lock-free read is a best-effort fast path.
	closed atomic.Bool

	// seq is the store-wide packet sequence counter; it is advanced with the target
	// session's mutex (or mu exclusively) held, so per-queue order equals seq order.
	seq atomic.Uint64

	// expMu guards exp and every session's exp field changes.
	expMu sync.Mutex
	exp   *expIndex

	retMu    sync.RWMutex
	retained map[string]*persistence.PersistedPacket
	retIdx   *topicTrie // the topics of retained, by level

	info persistence.SystemInfo // immutable
}

// Sessions returns the session store. It stays usable until Close; afterwards every
// call returns [persistence.ErrClosed].
func (s *store) Sessions() persistence.Sessions { return (*sessions)(s) }

// Retained returns the retained-message store.
func (s *store) Retained() persistence.Retained { return (*retained)(s) }

// System returns the store's metadata.
func (s *store) System() persistence.System { return (*system)(s) }

// Close discards every stored value. It waits for calls in progress, is idempotent,
// and makes every later call return [persistence.ErrClosed].
func (s *store) Close() error {
	s.mu.Lock()
	s.retMu.Lock()
	if !s.closed.Load() {
		s.closed.Store(true)
		for _, sess := range s.sessions {
			sess.dead = true
		}
		s.sessions = nil
		s.retained, s.retIdx = nil, nil
		s.expMu.Lock()
		s.exp = newExpIndex()
		s.expMu.Unlock()
	}
	s.retMu.Unlock()
	s.mu.Unlock()
	return nil
}

// system implements persistence.System.
type system store

// GetInfo returns the store's metadata: schema version, creation time (read from
// the clock at open), SDK version and the driver name "mem".
func (sy *system) GetInfo(ctx context.Context) (persistence.SystemInfo, error) {
	if err := ctx.Err(); err != nil {
		return persistence.SystemInfo{}, err
	}
	if sy.closed.Load() {
		return persistence.SystemInfo{}, errClosed
	}
	return sy.info, nil
}

// errClosed is returned by every call after Close.
var errClosed = fmt.Errorf("mem: %w", persistence.ErrClosed)

func notFoundSession(id string) error {
	return fmt.Errorf("mem: session %q: %w", id, persistence.ErrNotFound)
}

func invalidClass(c persistence.PacketClass) error {
	return fmt.Errorf("mem: %w: packet class %d", persistence.ErrInvalidArgument, uint8(c))
}

var (
	_ persistence.Driver   = Driver{}
	_ persistence.Provider = (*store)(nil)
	_ persistence.Sessions = (*sessions)(nil)
	_ persistence.Retained = (*retained)(nil)
	_ persistence.System   = (*system)(nil)
)
