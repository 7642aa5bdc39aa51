package driver

import (
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
// [SessionLoader]. Packets are loaded per class with persistence.Sessions.PacketsForEach, so a
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

// SessionLoader is called once per session by persistence.Sessions.LoadForEach, with no lock
// held. Returning an error (other than [ErrStopIteration]) stops the iteration and is
// returned.
type SessionLoader func(s *LoadedSession) error

// ExpiredLoader is called by persistence.Sessions.ExpiredForEach for each session whose deadline
// has passed.
type ExpiredLoader func(id string, e SessionExpiry) error
