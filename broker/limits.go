package broker

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
