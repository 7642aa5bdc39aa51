package broker

import "time"

// Default limits, used for every zero field of Limits.
const (
	// DefaultMaxQueuedMessages bounds a session's queue of undelivered QoS 1/2
	// messages.
	DefaultMaxQueuedMessages = 10000
	// DefaultMaxQueuedBytes bounds the encoded size of a session's queue.
	DefaultMaxQueuedBytes = 64 << 20
	// DefaultMaxClientIDLen is the longest client identifier accepted. MQTT
	// requires servers to accept 23 bytes and allows more; 256 is generous while
	// keeping store keys small.
	DefaultMaxClientIDLen = 256
	// DefaultMaxPacketSize is the largest packet accepted from a client, fixed
	// header included (announced as Maximum Packet Size to 5.0 clients).
	DefaultMaxPacketSize = 1 << 20
	// DefaultReceiveMaximum is the in-flight window: how many QoS 1/2 messages the
	// broker has outstanding towards one client (lowered further by the client's
	// own Receive Maximum), and how many unreleased QoS 2 messages it accepts
	// from one client.
	DefaultReceiveMaximum = 32
	// DefaultMaxConnQueueBytes bounds the bytes waiting to be written to one
	// connection (see Limits.MaxConnQueueBytes).
	DefaultMaxConnQueueBytes = 4 << 20
	// DefaultMaxBufferedBytes bounds the bytes waiting to be written to all
	// connections together (see Limits.MaxBufferedBytes).
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultBackpressureWait is how long a publisher is paused for a subscriber
	// whose outgoing budget is full before the message is dropped for it.
	DefaultBackpressureWait = time.Second
	// DefaultMaxConnections bounds the connections served at once.
	DefaultMaxConnections = 4096
	// DefaultMaxConnectionRate bounds new connections per second (with a burst
	// of as many).
	DefaultMaxConnectionRate = 1000
	// DefaultIdleTimeout is how long a client that asked for keep-alive 0 may
	// stay without sending a whole packet.
	DefaultIdleTimeout = 5 * time.Minute
)

// Limits bounds what one client can make the broker hold. Zero fields take the
// Default* constants; MaxKeepAlive 0 means the client's keepalive is accepted as is.
type Limits struct {
	// MaxQueuedMessages is the per-session queue limit in messages. When a
	// session's queue is full a new message for it is refused (dropped for that
	// session only, counted in Stats.Dropped, logged); queued messages are kept.
	MaxQueuedMessages int
	// MaxQueuedBytes is the per-session queue limit in encoded bytes, with the
	// same drop policy.
	MaxQueuedBytes int64
	// MaxClientIDLen is the longest client identifier accepted; longer ones are
	// refused with CONNACK "client identifier not valid".
	MaxClientIDLen int
	// MaxPacketSize is the largest packet a client may send; larger packets close
	// the connection (5.0: DISCONNECT 0x95 packet too large).
	MaxPacketSize int
	// ReceiveMaximum is the in-flight window per client in both directions.
	ReceiveMaximum int
	// MaxKeepAlive caps the keepalive a client may ask for (5.0 clients are told
	// through Server Keep Alive; 3.1.1 clients are timed out at the cap). 0: no cap.
	MaxKeepAlive uint16
	// TopicAliasMaximum is how many topic aliases a 5.0 client may set towards
	// the broker (announced in CONNACK); 0 means DefaultTopicAliasMaximum, a
	// negative value none. Aliases from the broker to a client follow the
	// client's own Topic Alias Maximum.
	TopicAliasMaximum int

	// MaximumQoS is the highest QoS the broker accepts in a PUBLISH or will and
	// grants in a SUBACK; nil means 2. Announced in CONNACK when below 2; a 5.0
	// PUBLISH above it is answered with DISCONNECT 0x9B, a will above it with
	// CONNACK 0x9B, and a 3.1.1 client that exceeds it is disconnected.
	MaximumQoS *byte
	// RetainUnavailable turns retained messages off (Retain Available 0): a
	// PUBLISH with RETAIN set is answered with DISCONNECT 0x9A, a will with
	// RETAIN with CONNACK 0x9A (3.1.1: connection closed, CONNACK refused).
	RetainUnavailable bool
	// WildcardSubUnavailable refuses filters with wildcards (SUBACK 0xA2; 0x80
	// for 3.1.1).
	WildcardSubUnavailable bool
	// SharedSubUnavailable refuses shared subscriptions (SUBACK 0x9E; 0x80 for
	// 3.1.1).
	SharedSubUnavailable bool
	// SubIDUnavailable refuses subscription identifiers: a SUBSCRIBE carrying one
	// is answered with DISCONNECT 0xA1.
	SubIDUnavailable bool

	// Memory and connection limits. Every byte the broker holds for a client
	// in memory is bounded by one of them: messages queued for a session by
	// MaxQueuedMessages and MaxQueuedBytes (persistent sessions keep their
	// queue in the store and only count it), messages in flight by
	// ReceiveMaximum times MaxPacketSize, a packet being read by what the client
	// actually sent, and packets waiting for a connection's writer by the two
	// budgets below.

	// MaxConnQueueBytes is the per-connection outgoing budget: the bytes of
	// packets waiting to be written to one client. A QoS 0 message that does
	// not fit pauses its publisher (the broker stops reading from it) for up
	// to BackpressureWait until the writer makes room, and is then dropped for
	// that subscriber (Stats.Dropped); a subscriber whose budget stayed full
	// that long is marked stalled, and further QoS 0 messages are dropped for it
	// without pausing anyone until its queue is half empty again. QoS 1/2
	// messages are bounded by the in-flight window instead and are charged but
	// never refused. A single packet larger than the budget still goes to a
	// connection with an empty queue. 0 means DefaultMaxConnQueueBytes.
	MaxConnQueueBytes int64
	// MaxBufferedBytes is the broker-wide outgoing budget: the bytes waiting
	// for every connection's writer together, with the same policy as
	// MaxConnQueueBytes, plus the QoS 1/2 messages queued in memory for
	// sessions that are not stored (clean sessions); a message that would
	// take such a queue past it is dropped for that session (Stats.Dropped).
	// 0 means DefaultMaxBufferedBytes.
	MaxBufferedBytes int64
	// BackpressureWait is how long a publisher is paused for one full
	// subscriber before its QoS 0 message is dropped for it; 0 means
	// DefaultBackpressureWait, a negative value drops at once.
	BackpressureWait time.Duration
	// MaxConnections bounds the connections served at once (TCP, TLS and
	// WebSocket together); a connection beyond it is closed as soon as it is
	// accepted and counted in Stats.Refused. 0 means DefaultMaxConnections, a
	// negative value no limit.
	MaxConnections int
	// MaxConnectionRate bounds how many connections are served per second,
	// with a burst of as many: a connection beyond it waits for its turn
	// (before anything is read from it), and one whose turn is more than two
	// seconds away is closed at once and counted in Stats.Refused. So a
	// reconnection storm is paced, a flood refused. 0 means
	// DefaultMaxConnectionRate, a negative value no limit.
	MaxConnectionRate int
	// IdleTimeout is how long a client that asked for keep-alive 0 (no
	// keep-alive) may go without sending a whole packet: after it the
	// connection is closed as for a keep-alive timeout (5.0: DISCONNECT 0x8D),
	// so a client trickling a byte at a time cannot hold a connection forever.
	// Clients with a keep-alive get one and a half times it per packet instead.
	// 0 means DefaultIdleTimeout, a negative value no limit. MaxKeepAlive, when
	// set, applies to keep-alive 0 clients first and is told to 5.0 clients.
	IdleTimeout time.Duration
}

// DefaultTopicAliasMaximum is the number of topic aliases a 5.0 client may set
// when Limits.TopicAliasMaximum is 0.
const DefaultTopicAliasMaximum = 64

// maxQoS returns the highest QoS the broker accepts and grants.
func (l Limits) maxQoS() byte {
	if l.MaximumQoS == nil {
		return 2
	}
	return min(*l.MaximumQoS, 2)
}

func (l Limits) withDefaults() Limits {
	if l.MaxQueuedMessages <= 0 {
		l.MaxQueuedMessages = DefaultMaxQueuedMessages
	}
	if l.MaxQueuedBytes <= 0 {
		l.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if l.MaxClientIDLen <= 0 {
		l.MaxClientIDLen = DefaultMaxClientIDLen
	}
	if l.MaxPacketSize <= 0 {
		l.MaxPacketSize = DefaultMaxPacketSize
	}
	if l.ReceiveMaximum <= 0 {
		l.ReceiveMaximum = DefaultReceiveMaximum
	}
	if l.ReceiveMaximum > 65535 {
		l.ReceiveMaximum = 65535
	}
	if l.MaxConnQueueBytes <= 0 {
		l.MaxConnQueueBytes = DefaultMaxConnQueueBytes
	}
	if l.MaxBufferedBytes <= 0 {
		l.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if l.BackpressureWait == 0 {
		l.BackpressureWait = DefaultBackpressureWait
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionRate == 0 {
		l.MaxConnectionRate = DefaultMaxConnectionRate
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case l.TopicAliasMaximum == 0:
		l.TopicAliasMaximum = DefaultTopicAliasMaximum
	case l.TopicAliasMaximum < 0:
		l.TopicAliasMaximum = 0
	case l.TopicAliasMaximum > 65535:
		l.TopicAliasMaximum = 65535
	}
	return l
}

// queueFull reports whether a session holding n messages of size bytes can take
// one more message of size add.
func (l Limits) queueFull(n int, size int64, add int) bool {
	return n+1 > l.MaxQueuedMessages || size+int64(add) > l.MaxQueuedBytes
}
