package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Store is an open store: what a broker holds, as a program holds a *sql.DB. It is
// safe for concurrent use. Every call goes through the same guards, whatever the
// driver:
//
//   - The first argument is a context. A context that is already done makes the call
//     return ctx.Err() (possibly wrapped) and write nothing; an iteration also stops
//     between callbacks once its context is done.
//   - After Close every call returns an error matching [ErrClosed]; Close itself is
//     idempotent. An iteration running when Close is called stops before its next
//     callback with [ErrClosed].
//   - Arguments no store can accept (an unknown packet class, a nil packet, state or
//     callback, an empty topic filter or retained topic, QoS above 2) are refused with
//     [ErrInvalidArgument] before the driver sees them.
//   - Missing items: get-style calls return [ErrNotFound]. Deleting a missing item of
//     an existing session is a no-op, and so is Sessions.Delete of a missing session.
//     Every other session-scoped call on a session that does not exist returns
//     [ErrNotFound]: nothing is created implicitly.
//   - Callbacks run with no lock held: a callback may call any method of the same
//     store. A callback's error stops the iteration and is returned, except
//     [ErrStopIteration] (also wrapped), which stops it and makes the call return nil.
//   - Stored values are copies: changing a value after passing it in, or after
//     receiving it, changes nothing in the store.
//   - Times come back equal (time.Time.Equal) to what was stored, to the nanosecond.
//   - Client identifiers and topics are arbitrary byte strings; drivers never
//     interpret them.
type Store struct {
	conn     driver.Conn
	obs      Observer
	closed   atomic.Bool
	once     sync.Once
	closeErr error
	sessions Sessions
	retained Retained
}

// OpenOption adjusts how a store is opened.
type OpenOption func(*openConfig)

type openConfig struct {
	env driver.Env
	obs Observer
}

// WithClock makes the driver read time from c.
func WithClock(c Clock) OpenOption { return func(o *openConfig) { o.env.Clock = c } }

// WithLogger gives the driver a logger for its diagnostics.
func WithLogger(l *slog.Logger) OpenOption { return func(o *openConfig) { o.env.Logger = l } }

// WithObserver reports every call through the store to obs (metrics, traces); see
// [Observer]. Package github.com/mqttstore/mqttstore/persistence/otelstore provides
// one for OpenTelemetry.
func WithObserver(obs Observer) OpenOption { return func(o *openConfig) { o.obs = obs } }

// Open opens the store described by dsn, a URL whose scheme names the driver:
// "mem://", "bolt:///var/lib/mqtt/state.db?sync=always",
// "postgres://user@host/db?schema=mqtt". Errors are those of [NewConnector] and of
// the driver's Connect (such as [ErrSchemaVersion]).
func Open(ctx context.Context, dsn string, opts ...OpenOption) (*Store, error) {
	c, err := NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	s, err := OpenConnector(ctx, c, opts...)
	if err != nil {
		return nil, redactErr(err, dsn)
	}
	return s, nil
}

// OpenConnector opens a store from a driver's connector: its typed configuration,
// such as a bolt file path with options or a PostgreSQL connection pool, without a
// URL (as sql.OpenDB does).
func OpenConnector(ctx context.Context, c driver.Connector, opts ...OpenOption) (*Store, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil connector", ErrInvalidArgument)
	}
	cfg := openConfig{env: driver.Env{Clock: SystemClock{}, Logger: slog.New(slog.DiscardHandler)}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.env.Clock == nil {
		cfg.env.Clock = SystemClock{}
	}
	if cfg.env.Logger == nil {
		cfg.env.Logger = slog.New(slog.DiscardHandler)
	}
	if co, ok := cfg.obs.(CommitObserver); ok {
		cfg.env.OnCommit = co.Commit
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.Connect(ctx, cfg.env)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("persistence: driver's Connect returned neither a store nor an error")
	}
	s := &Store{conn: conn, obs: cfg.obs}
	s.sessions.s = s
	s.retained.s = s
	return s, nil
}

// Sessions returns the session store.
func (s *Store) Sessions() *Sessions { return &s.sessions }

// Retained returns the retained-message store.
func (s *Store) Retained() *Retained { return &s.retained }

// Info returns the store's metadata.
func (s *Store) Info(ctx context.Context) (SystemInfo, error) {
	ctx, c, err := s.begin(ctx, "Info", 0)
	if err != nil {
		return SystemInfo{}, c.end(err)
	}
	info, err := s.conn.Info(ctx)
	return info, c.end(err)
}

// Close releases the store after the writes in progress finish. Calls made after it
// return [ErrClosed]. It is idempotent: later calls return the first call's result.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.conn.Close()
	})
	return s.closeErr
}

// Driver returns the driver's connection under s. It is for driver tests and
// tools that use a driver's own capabilities; a broker never needs it.
func (s *Store) Driver() driver.Conn { return s.conn }

// errClosed is the error of a call on a closed store.
var errClosed = fmt.Errorf("%w", ErrClosed)

// check returns the error a call must fail with before reaching the driver.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// call is one call in progress through a Store.
type call struct {
	s    *Store
	done func(error)
}

// begin starts a call: it tells the observer and checks the store and the context.
// The caller returns c.end(err) with the error begin returned, or with the driver's.
func (s *Store) begin(ctx context.Context, op string, ops int) (context.Context, call, error) {
	c := call{s: s}
	if s.obs != nil {
		ctx, c.done = s.obs.Begin(ctx, Call{Op: op, Ops: ops})
	}
	return ctx, c, s.check(ctx)
}

// end finishes the call and returns the error to give the caller.
func (c call) end(err error) error {
	err = c.s.result(err)
	if c.done != nil {
		c.done(err)
	}
	return err
}

// result maps a driver's error: stop-iteration becomes success, and an error of a
// call that raced with Close matches ErrClosed.
func (s *Store) result(err error) error {
	if err == nil || errors.Is(err, ErrStopIteration) {
		return nil
	}
	if s.closed.Load() && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// between is called before each callback of an iteration.
func (s *Store) between(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// errWrongSeqs reports a driver that broke the Apply contract.
func errWrongSeqs(got, want int) error {
	return fmt.Errorf("persistence: the driver returned %d sequence numbers for %d appends", got, want)
}
