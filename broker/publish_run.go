package broker

import (
	"bufio"

	"github.com/mqttstore/mqttstore/broker/packet"
)

// A client that keeps several QoS 1 messages in flight sends them back to back,
// and while the broker commits one, the next ones arrive. The reader takes every
// PUBLISH that is already whole in its buffer into one run, routed with one
// fan-out commit (one store write, so one fsync for the run on a durable store)
// and acknowledged together (one write(2) for the run's PUBACKs). Nothing waits
// for more input: a run is only what has arrived, so it costs no latency.
//
// Only QoS 0 and 1 messages without RETAIN join a run. A retained message updates
// the retained store before its fan-out, and a QoS 2 message's duplicate check
// needs the commit of the one before: both are handled on their own, after the
// run before them.

// maxPublishRun bounds the messages of one run.
const maxPublishRun = 64

// runnable reports whether p may join a run.
func runnable(p *packet.Publish) bool { return p.QoS <= 1 && !p.Retain }

// publishRun handles first and every runnable PUBLISH whole in the read buffer
// after it, and reports whether the connection goes on.
func (c *conn) publishRun(first *packet.Publish, maxSize uint32) bool {
	run := append(c.pubRun[:0], first)
	var next packet.Packet
	var err error
	for len(run) < maxPublishRun && nextRunnable(c.br) {
		next, err = packet.ReadPacket(c.br, c.version, maxSize)
		if err != nil {
			break
		}
		pub, ok := next.(*packet.Publish)
		if !ok || !runnable(pub) {
			break // nextRunnable looked at the same bytes; kept for safety
		}
		run = append(run, pub)
		next = nil
	}
	ok := c.handlePublishes(run)
	clear(run)
	c.pubRun = run[:0]
	switch {
	case !ok:
		return false
	case err != nil:
		c.readError(err)
		return false
	case next != nil:
		return c.handle(next)
	}
	return true
}

// nextRunnable reports whether br holds a whole runnable PUBLISH at its start,
// so that reading it does not block.
func nextRunnable(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 2 {
		return false
	}
	h, _ := br.Peek(min(n, 5))
	if h[0]>>4 != 3 || h[0]&0x01 != 0 || (h[0]>>1)&0x03 > 1 {
		return false // not a PUBLISH, or RETAIN, or QoS 2 (or malformed: ReadPacket says)
	}
	rl, mul := 0, 1
	for i := 1; i < len(h); i++ {
		rl += int(h[i]&0x7F) * mul
		if h[i]&0x80 == 0 {
			return 1+i+rl <= n
		}
		mul <<= 7
	}
	return false
}

// bufferedPuback reads a successful PUBACK without properties (four bytes, the
// same in every version) when br holds one at its start.
func bufferedPuback(br *bufio.Reader) (uint16, bool) {
	if br.Buffered() < 4 {
		return 0, false
	}
	h, _ := br.Peek(4)
	pid := uint16(h[2])<<8 | uint16(h[3])
	if h[0] != ackPuback || h[1] != 2 || pid == 0 {
		return 0, false // anything else, packet id 0 included, is ReadPacket's
	}
	br.Discard(4)
	return pid, true
}
