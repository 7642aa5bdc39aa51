package persistence

import (
	"context"
	"time"
)

// SessionBase is what a session is created with.
type SessionBase struct {
	// CreatedAt is when the broker created the session.
	CreatedAt time.Time
	// ProtocolVersion is the MQTT protocol level of the connection that created it.
	ProtocolVersion uint8
}

// Subscription is one topic filter of a session with its MQTT 5.0 options. A session
// holds at most one subscription per filter (shared subscriptions keep the full
// "$share/name/filter" string as their filter).
type Subscription struct {
	// Filter is the topic filter exactly as the client sent it.
	Filter string
	// QoS is the maximum QoS granted, 0..2.
	QoS uint8
	// NoLocal: messages published by this session are not delivered to it.
	NoLocal bool
	// RetainAsPublished: forwarded messages keep the RETAIN flag they were published with.
	RetainAsPublished bool
	// RetainHandling is the MQTT 5.0 retain handling option, 0..2.
	RetainHandling uint8
	// ID is the MQTT 5.0 subscription identifier, 0 when none was given.
	ID uint32
}

// SessionState is the broker's own record of a session beyond its subscriptions and
// packets: what it needs to restore the session after a restart.
type SessionState struct {
	// ProtocolVersion is the MQTT protocol level of the session's last connection.
	ProtocolVersion uint8
	// ExpiryInterval is the session expiry interval the client asked for (MQTT 5.0);
	// for 3.1.1 persistent sessions a broker stores its own policy. A negative value
	// means the session never expires.
	ExpiryInterval time.Duration
	// Username is the authenticated user name, if any.
	Username string
	// Will is the will message as a PUBLISH packet (nil when the session has none).
	Will *PersistedPacket
	// WillDelay is the MQTT 5.0 will delay interval.
	WillDelay time.Duration
	// DisconnectedAt is when the client last disconnected; zero while connected.
	DisconnectedAt time.Time
	// UserData is opaque broker-specific data stored and returned unchanged.
	UserData []byte
}

// Clone returns a deep copy of s.
func (s *SessionState) Clone() *SessionState {
	if s == nil {
		return nil
	}
	c := *s
	c.Will = s.Will.Clone()
	if s.UserData != nil {
		c.UserData = append(make([]byte, 0, len(s.UserData)), s.UserData...)
	}
	return &c
}

// SessionExpiry holds a session's deadlines as absolute times, so that a restart never
// resets an expiry clock. A zero time means "no deadline".
type SessionExpiry struct {
	// ExpireAt is when the session must be discarded.
	ExpireAt time.Time
	// WillAt is when the session's will must be published.
	WillAt time.Time
}

// IsZero reports whether e has neither deadline.
func (e SessionExpiry) IsZero() bool { return e.ExpireAt.IsZero() && e.WillAt.IsZero() }

// Due reports whether either deadline is at or before now.
func (e SessionExpiry) Due(now time.Time) bool {
	return (!e.ExpireAt.IsZero() && !now.Before(e.ExpireAt)) || (!e.WillAt.IsZero() && !now.Before(e.WillAt))
}

// Next returns the earlier of the two deadlines that are set (zero when none is).
func (e SessionExpiry) Next() time.Time {
	switch {
	case e.ExpireAt.IsZero():
		return e.WillAt
	case e.WillAt.IsZero():
		return e.ExpireAt
	case e.WillAt.Before(e.ExpireAt):
		return e.WillAt
	}
	return e.ExpireAt
}

// LoadedSession is everything but the packets of one stored session, as handed to a
// [SessionLoader]. Packets are loaded per class with [Packets.PacketsForEach], so a
// session with a large backlog never has to fit in memory.
type LoadedSession struct {
	ID   string
	Base SessionBase
	// State is nil when none was stored.
	State *SessionState
	// Subscriptions are in no particular order.
	Subscriptions []Subscription
	// Expiry is nil when none was stored.
	Expiry *SessionExpiry
}

// SessionLoader is called once per session by [Sessions.LoadForEach], with no lock
// held. Returning an error (other than [ErrStopIteration]) stops the iteration and is
// returned.
type SessionLoader func(s *LoadedSession) error

// ExpiredLoader is called by [Expiry.ExpiredForEach] for each session whose deadline
// has passed.
type ExpiredLoader func(id string, e SessionExpiry) error

// Subscriptions stores the subscriptions of each session. Writes return [ErrNotFound]
// for a session that does not exist.
type Subscriptions interface {
	// SubscriptionsStore adds subs to session id. A subscription whose filter is
	// already stored replaces it; within one call the last one for a filter wins.
	SubscriptionsStore(ctx context.Context, id string, subs ...Subscription) error
	// SubscriptionsDelete removes the subscriptions with the given filters; removing
	// one that does not exist is a no-op.
	SubscriptionsDelete(ctx context.Context, id string, filters ...string) error
	// SubscriptionsDeleteAll removes every subscription of session id.
	SubscriptionsDeleteAll(ctx context.Context, id string) error
	// SubscriptionsLoad returns every subscription of session id, in no particular
	// order (an empty slice when it has none).
	SubscriptionsLoad(ctx context.Context, id string) ([]Subscription, error)
}

// State stores the broker's per-session record ([SessionState]).
type State interface {
	// StateStore replaces the state of session id with a copy of st.
	StateStore(ctx context.Context, id string, st *SessionState) error
	// StateGet returns the state of session id, or [ErrNotFound] when the session or
	// its state does not exist.
	StateGet(ctx context.Context, id string) (*SessionState, error)
	// StateDelete removes the state of session id; a no-op when there is none.
	StateDelete(ctx context.Context, id string) error
}

// Expiry stores session-expiry and will-delay deadlines, indexed so that the sessions
// whose deadline passed can be found without loading every session.
type Expiry interface {
	// ExpiryStore sets the deadlines of session id. Storing a zero SessionExpiry is
	// the same as ExpiryDelete.
	ExpiryStore(ctx context.Context, id string, e SessionExpiry) error
	// ExpiryGet returns the deadlines of session id, or [ErrNotFound] when the
	// session or its deadlines do not exist.
	ExpiryGet(ctx context.Context, id string) (SessionExpiry, error)
	// ExpiryDelete removes the deadlines of session id; a no-op when there are none.
	ExpiryDelete(ctx context.Context, id string) error
	// ExpiredForEach calls fn for every session with a deadline (ExpireAt or WillAt)
	// at or before now, earliest deadline first. It touches only those sessions. fn
	// may delete the session or change its deadlines.
	ExpiredForEach(ctx context.Context, now time.Time, fn ExpiredLoader) error
}

// Sessions is the session store: the four per-session stores plus the session
// records themselves and atomic multi-operation writes.
type Sessions interface {
	Packets
	Subscriptions
	State
	Expiry

	// Create records a new session. It returns [ErrAlreadyExists] when id exists.
	Create(ctx context.Context, id string, base SessionBase) error
	// Exists reports whether session id exists.
	Exists(ctx context.Context, id string) (bool, error)
	// Count returns the number of sessions.
	Count(ctx context.Context) (uint64, error)
	// LoadForEach calls fn for every session, in no particular order, with no lock
	// held (fn may call any method of the store, including Delete of that session).
	LoadForEach(ctx context.Context, fn SessionLoader) error
	// Delete removes session id and everything it owns: packets of every class,
	// subscriptions, state and expiry (retained messages are not the session's).
	// Deleting a missing session is a no-op.
	Delete(ctx context.Context, id string) error
	// Apply commits every operation of b atomically: all of them or none. It returns
	// the sequence numbers assigned to b's appends, in the order they were added. On
	// error nothing of b was written; an operation on a missing session yields
	// [ErrNotFound], an update of a missing packet [ErrNotFound].
	Apply(ctx context.Context, b *Batch) ([]uint64, error)
}
