package broker

import "github.com/mqttstore/mqttstore/persistence"

// A message queued for a stored session whose client is online (its window was
// full) is written to the store and read back by the delivery pump moments later.
// The connection keeps the message's wireMsg for it meanwhile, by the sequence
// number of its queue record, so the pump sends it without decoding the stored
// bytes and encoding them again for the client's protocol version. The cache is
// bounded; a message not in it (queued while offline, or beyond the bound) is
// read from the store as before.

// maxQueuedCache bounds the wireMsgs a connection keeps for its queue.
const maxQueuedCache = 256

// keepQueued remembers m as the queue record seq. Caller holds c.sess.mu.
func (c *conn) keepQueued(seq uint64, m *wireMsg) {
	if len(c.queuedMsgs) >= maxQueuedCache {
		return
	}
	if c.queuedMsgs == nil {
		c.queuedMsgs = make(map[uint64]*wireMsg)
	}
	c.queuedMsgs[seq] = m
}

// queuedMsg returns the message of queue record p, which the pump moves in flight:
// the one the connection kept, or one read from p. Caller holds c.sess.mu.
func (c *conn) queuedMsg(p *persistence.PersistedPacket) *wireMsg {
	if m, ok := c.queuedMsgs[p.Seq]; ok {
		delete(c.queuedMsgs, p.Seq)
		return m
	}
	return wireFromStored(p)
}
