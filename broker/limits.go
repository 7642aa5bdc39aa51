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
	return l
}

// queueFull reports whether a session holding n messages of size bytes can take
// one more message of size add.
func (l Limits) queueFull(n int, size int64, add int) bool {
	return n+1 > l.MaxQueuedMessages || size+int64(add) > l.MaxQueuedBytes
}
