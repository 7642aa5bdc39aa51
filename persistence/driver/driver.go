package driver

import (
	"context"
	"log/slog"
	"net/url"
	"time"
)

// Driver turns a store URL into a [Connector]. A driver registers itself with
// persistence.Register under its URL scheme from its init function.
type Driver interface {
	// OpenConnector parses and validates u (scheme, path and options) without any
	// I/O. A malformed URL or an unknown or bad option is an error matching
	// [ErrInvalidConfig] that names the problem. Use [NewOptions] to read options, so
	// that unknown ones are rejected.
	OpenConnector(u *url.URL) (Connector, error)
}

// Connector holds a driver's parsed configuration and opens stores with it. A
// driver's typed configuration (a file path and options, an existing connection
// pool) implements Connector, so that a user can open a store without a URL through
// persistence.OpenConnector.
type Connector interface {
	// Connect opens (creating if needed) the store. It must refuse a store written
	// by a newer schema with [ErrSchemaVersion] (see [CheckSchema]).
	Connect(ctx context.Context, env Env) (Conn, error)
}

// Env is what the SDK gives a driver besides its own configuration.
type Env struct {
	// Clock is where the driver reads the current time (creation timestamps). Never nil.
	Clock Clock
	// Logger receives the driver's diagnostics. Never nil.
	Logger *slog.Logger
	// OnCommit, when not nil, must be called by a driver that merges concurrent
	// writes into shared commits, once per commit (it feeds group-commit metrics).
	OnCommit func(CommitInfo)
}

// CommitInfo describes one commit of a driver that merges concurrent writes.
type CommitInfo struct {
	// Calls is the number of callers' writes the commit carried.
	Calls int
	// Duration is how long the commit took.
	Duration time.Duration
	// Err is the commit's error, nil when it succeeded.
	Err error
}

// Clock tells the time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Conn is an open store, as a driver implements it. The SDK's Store wraps it and
// enforces, before any Conn method is called, everything the API promises about
// arguments and state: the store is open, the context is not done, classes, packets,
// subscriptions, states, topics and filters are valid and callbacks are not nil. A
// Conn therefore never re-checks them. What remains for the driver:
//
//   - Every write arrives through Apply, as a list of [Op] to commit atomically.
//     Single calls of the API are one-operation lists.
//   - Values passed in belong to the caller: a driver that keeps a packet, state or
//     subscription after the call returns copies it, and never modifies it. Values
//     it returns or hands to a callback belong to the receiver.
//   - Callbacks run with no lock held and no transaction open that a call from the
//     callback into the same store would wait for. A callback's error stops the
//     iteration and is returned (wrapped or not); the SDK turns [ErrStopIteration]
//     into success and checks the context and Close between callbacks.
//   - Methods may race with Close: they must then return an error (any) rather than
//     crash; the SDK reports it as [ErrClosed].
//   - Errors match the sentinels of this package where one applies ([ErrNotFound],
//     [ErrAlreadyExists], [ErrBrokenEntry], …) and keep the engine's error visible.
//
// The conformance package checks all of this; run it from the driver's tests.
type Conn interface {
	// Apply commits ops atomically: all of them or none, in order (a later op sees
	// the effect of an earlier one). It returns the sequence numbers assigned to the
	// OpPacketAppend operations, in order. An operation on a missing session yields
	// [ErrNotFound] (except OpCreate, which yields [ErrAlreadyExists] for an existing
	// one, and OpDelete, a no-op for a missing one); OpPacketUpdate of a missing
	// packet yields [ErrNotFound]; deleting a missing packet, subscription, state or
	// expiry is a no-op.
	Apply(ctx context.Context, ops []Op) ([]uint64, error)

	// Exists reports whether session id exists.
	Exists(ctx context.Context, id string) (bool, error)
	// Count returns the number of sessions.
	Count(ctx context.Context) (uint64, error)
	// LoadForEach calls fn for every session, in no particular order.
	LoadForEach(ctx context.Context, fn SessionLoader) error
	// SubscriptionsLoad returns every subscription of session id, or [ErrNotFound].
	SubscriptionsLoad(ctx context.Context, id string) ([]Subscription, error)
	// StateGet returns the state of session id, or [ErrNotFound] when the session or
	// its state does not exist.
	StateGet(ctx context.Context, id string) (*SessionState, error)
	// ExpiryGet returns the deadlines of session id, or [ErrNotFound] when the
	// session or its deadlines do not exist.
	ExpiryGet(ctx context.Context, id string) (SessionExpiry, error)
	// ExpiredForEach calls fn for every session with a deadline at or before now,
	// earliest deadline first, touching only those sessions.
	ExpiredForEach(ctx context.Context, now time.Time, fn ExpiredLoader) error

	// PacketGet returns packet seq of (id, class), or [ErrNotFound].
	PacketGet(ctx context.Context, id string, class PacketClass, seq uint64) (*PersistedPacket, error)
	// PacketCount returns the number of packets in (id, class), or [ErrNotFound] for
	// a missing session.
	PacketCount(ctx context.Context, id string, class PacketClass) (uint64, error)
	// PacketsForEach calls fn for each packet of (id, class) in FIFO order and
	// deletes the packets for which fn returned del=true (also when fn then stops the
	// iteration with an error). Packets appended during the iteration may or may not
	// be visited.
	PacketsForEach(ctx context.Context, id string, class PacketClass, fn PacketLoader) error

	// RetainedPut stores p as the retained message of topic, replacing any other.
	RetainedPut(ctx context.Context, topic string, p *PersistedPacket) error
	// RetainedGet returns the retained message of topic, or [ErrNotFound].
	RetainedGet(ctx context.Context, topic string) (*PersistedPacket, error)
	// RetainedDelete removes the retained message of topic; a no-op when there is none.
	RetainedDelete(ctx context.Context, topic string) error
	// RetainedLoad calls fn once for every retained message whose topic matches at
	// least one of filters ([MatchTopic]), or for every retained message when
	// filters is nil. The SDK never passes an empty, non-nil list.
	RetainedLoad(ctx context.Context, filters []string, fn RetainedLoader) error
	// RetainedReplace replaces every retained message with msgs atomically; later
	// messages for the same topic win. An empty msgs removes every retained message.
	RetainedReplace(ctx context.Context, msgs []*RetainedMessage) error
	// RetainedCount returns the number of retained messages.
	RetainedCount(ctx context.Context) (uint64, error)

	// Info returns the store's metadata, as recorded when it was created.
	Info(ctx context.Context) (SystemInfo, error)
	// Close releases the store after the writes in progress finish. The SDK calls
	// it once.
	Close() error
}
