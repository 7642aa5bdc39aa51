package broker

import "time"

// keepAliveFor returns the keepalive the broker enforces for a client that asked
// for ka seconds, and whether it differs from ka (5.0 clients are then told
// through Server Keep Alive). A cap applies to clients asking for none as well,
// since "none" would let a dead connection hold its session forever.
func (l Limits) keepAliveFor(ka uint16) (uint16, bool) {
	if l.MaxKeepAlive > 0 && (ka == 0 || ka > l.MaxKeepAlive) {
		return l.MaxKeepAlive, true
	}
	return ka, false
}

// readTimeout is how long the broker waits for any packet from a client with
// keepalive ka seconds before closing the connection: one and a half times the
// keepalive [MQTT-3.1.2-24]. Zero means no timeout.
func readTimeout(ka uint16) time.Duration {
	return time.Duration(ka) * 1500 * time.Millisecond
}

// packetDeadline is how long the reader waits for the next whole packet from a
// client whose keep-alive read timeout is keepDur: keepDur itself, or for a
// client without keep-alive Limits.IdleTimeout (0: no deadline).
func (l Limits) packetDeadline(keepDur time.Duration) time.Duration {
	if keepDur > 0 {
		return keepDur
	}
	return max(l.IdleTimeout, 0)
}
