package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// target is one session a message goes to, with the options of its matching
// subscriptions merged (MQTT 5.0 3.3.4: one copy at the highest granted QoS,
// carrying every subscription identifier). A shared subscription is a target of
// its own, with share set: its copy is separate from the session's other
// subscriptions [MQTT 5.0 4.8.2].
type target struct {
	s      *session
	qos    byte
	retain bool // forward the RETAIN flag (retain-as-published, or a retained message on subscribe)
	ids    []uint32
	share  *shareGroup
}

// planKind says what fanOut decided for one target.
type planKind uint8

const (
	planSend     planKind = iota + 1 // QoS 0 to an online client
	planInflight                     // put in flight directly (ClassUnAck for stored sessions)
	planQueue                        // queued (ClassQoS12 for stored sessions, memory otherwise)
	planRemote                       // queued for a session another node owns (cluster mode)
)

type plan struct {
	kind   planKind
	s      *session
	f      *flight
	m      *wireMsg
	share  *shareGroup
	size   int      // what a queued message counts against the queue
	append bool     // has an append in the batch
	fenced bool     // the batch carries the session's fence (cluster mode)
	acked  []uint64 // the session's pending acknowledgement deletes, carried by the batch
}

// publish routes msg (already owned by the broker) from client from: it updates the
// retained store, then fans out to every matching session. It returns Success or the
// reason code for the publisher (UnspecifiedError when the store failed).
func (b *Broker) publish(from string, msg *packet.Publish, expireAt time.Time, mark *incomingMark) packet.ReasonCode {
	in := [1]fanIn{{msg: msg, expireAt: expireAt, mark: mark}}
	b.publishAll(from, in[:])
	return in[0].rc
}

// variants caches the wireMsg of each (QoS, RETAIN) variant of one message for
// the targets without subscription identifiers, which are most.
type variants struct {
	msg      *packet.Publish
	expireAt time.Time
	cache    [6]*wireMsg // by qos*2 + retain
}

func (v *variants) forTarget(t *target) *wireMsg {
	retain := v.msg.Retain && t.retain
	if len(t.ids) == 0 {
		i := int(t.qos) * 2
		if retain {
			i++
		}
		if i < len(v.cache) && v.cache[i] != nil {
			return v.cache[i]
		}
		m := v.build(t.qos, retain, nil)
		if i < len(v.cache) {
			v.cache[i] = m
		}
		return m
	}
	return v.build(t.qos, retain, t.ids)
}

func (v *variants) build(qos byte, retain bool, ids []uint32) *wireMsg {
	if qos == v.msg.QoS && retain == v.msg.Retain && ids == nil && v.msg.Properties.SubscriptionIDs == nil {
		return newWireMsg(v.msg, v.expireAt)
	}
	out := *v.msg
	out.QoS, out.Retain = qos, retain
	out.Properties.SubscriptionIDs = ids
	return newWireMsg(&out, v.expireAt)
}

// fanOut delivers msg to targets. Every message for a stored session (queued, or
// put in flight when the client is online with room in its window) and the QoS 2
// incoming mark go into ONE batch, committed before anything is sent and before
// the publisher is acknowledged. msg is not changed and must not be afterwards.
func (b *Broker) fanOut(msg *packet.Publish, expireAt time.Time, targets []target, mark *incomingMark) packet.ReasonCode {
	in := [1]fanIn{{msg: msg, expireAt: expireAt, targets: targets, mark: mark}}
	b.fanOutAll(in[:])
	return in[0].rc
}

// mustEncode encodes the incoming QoS 2 record; msg was decoded from the wire, so
// it encodes.
func (b *Broker) mustEncode(msg *packet.Publish, pid uint16) []byte {
	q := *msg
	q.QoS, q.PacketID = 2, pid
	data, err := packet.Encode(nil, &q, packet.Version5)
	if err != nil {
		return nil
	}
	return data
}

// planFor decides what happens to m for session s and adds its store writes: its
// pending acknowledgement deletes to dels, its append to appends. ok is false when the message is not delivered to s (offline QoS 0, queue
// full, session gone); err is set when m cannot be encoded for the store.
func (b *Broker) planFor(s *session, m *wireMsg, share *shareGroup, dels, appends *persistence.Batch) (plan, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return plan{}, false, nil
	}
	if !b.owned(s) {
		// Another node's (or nobody's yet): queued in the store, where its
		// owner's pump finds it (woken by the batch's notification). QoS 0 goes
		// only to a session connected somewhere.
		if m.qos == 0 && !s.online {
			return plan{}, false, nil
		}
		pp, err := m.stored(0)
		if err != nil {
			return plan{}, false, err
		}
		appends.PacketAppend(s.id, persistence.ClassQoS12, pp)
		return plan{kind: planRemote, s: s, m: m, append: true}, true, nil
	}
	online := s.conn != nil && s.ready
	if m.qos == 0 {
		if !online {
			return plan{}, false, nil // QoS 0 is not queued for offline sessions
		}
		return plan{kind: planSend, s: s, m: m}, true, nil
	}
	if online && !s.hasQueue() && len(s.inflight) < s.conn.window {
		if pid := s.allocPID(); pid != 0 {
			var pp *persistence.PersistedPacket
			if s.stored {
				var err error
				if pp, err = m.stored(pid); err != nil {
					return plan{}, false, err
				}
			}
			f := &flight{pid: pid, qos: m.qos, pkt: pp, msg: m, share: share, reserved: true}
			s.inflight[pid] = f
			p := plan{kind: planInflight, s: s, f: f, m: m}
			if s.stored {
				p.acked = s.takeAcked(dels)
				appends.PacketAppendShared(s.id, persistence.ClassUnAck, pp) // pp shares m's encoding, which nothing changes
				p.append = true
				if b.cl != nil {
					b.fence(s, dels)
					p.fenced = true
				}
			}
			return p, true, nil
		}
	}
	if !s.stored && s.conn == nil {
		return plan{}, false, nil
	}
	var pp *persistence.PersistedPacket
	size := 0
	if s.stored {
		var err error
		if pp, err = m.stored(0); err != nil {
			return plan{}, false, err
		}
		size = len(pp.Data)
	} else {
		size = m.size()
	}
	if b.limits.queueFull(s.queued+s.pendingQ, s.queuedBytes, size) {
		b.stats.dropped.Add(1)
		if !s.fullLog {
			s.fullLog = true
			b.log.Warn("broker: session queue full; refusing new messages for it", "client", s.id,
				"queued", s.queued+s.pendingQ, "bytes", s.queuedBytes)
		}
		return plan{}, false, nil
	}
	s.pendingQ++
	p := plan{kind: planQueue, s: s, m: m, share: share, size: size}
	if s.stored {
		appends.PacketAppendShared(s.id, persistence.ClassQoS12, pp)
		p.append = true
	}
	return p, true, nil
}

// undoPlans releases what planFor reserved when the batch failed.
func (b *Broker) undoPlans(plans []plan) {
	for _, p := range plans {
		p.s.mu.Lock()
		p.s.returnAcked(p.acked)
		switch p.kind {
		case planInflight:
			if p.s.inflight[p.f.pid] == p.f {
				delete(p.s.inflight, p.f.pid)
			}
		case planQueue:
			p.s.pendingQ--
		}
		p.s.mu.Unlock()
	}
}

// commitPlan carries out a plan whose writes are committed. A message it puts
// in flight is queued for the writer with hold set and its connection added to
// held, which the caller signals.
func (b *Broker) commitPlan(p plan, seq uint64, held *heldOut) {
	s := p.s
	s.mu.Lock()
	c := s.conn
	if !s.ready {
		c = nil
	}
	switch p.kind {
	case planSend:
		s.mu.Unlock()
		if c != nil {
			// A droppable message may wait for room that the held
			// connections' writers make.
			held.signal()
			b.sendMsg(c, p.m, 0, false, true)
		}
		return
	case planInflight:
		if !p.append {
			s.localSeq++
			seq = s.localSeq
		}
		p.f.seq, p.f.reserved = seq, false
		if s.inflight[p.f.pid] != p.f { // the session was cleaned meanwhile
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if c != nil {
			b.sendFlight(c, p.f, false, true)
			held.add(c)
		}
		return
	case planRemote:
		s.mu.Unlock()
		return
	case planQueue:
		s.pendingQ--
		if s.stored {
			s.queued++
			s.queuedBytes += int64(p.size)
			if c != nil {
				c.keepQueued(seq, p.m)
			}
		} else if !b.queueInMemory(s, queuedMsg{m: p.m, share: p.share, size: p.size}) {
			c = nil
		}
		if c != nil && s.pumpWant(c.window) == 0 {
			c = nil // the pump has nothing to move yet; an acknowledgement wakes it (completeFlight)
		}
		s.mu.Unlock()
		if c != nil {
			c.wake()
		}
	}
}

// decodePublish decodes a stored PUBLISH. Stored bytes are input from disk: a
// broken one is an error, never a panic.
func decodePublish(pp *persistence.PersistedPacket) (*packet.Publish, error) {
	v := pp.ProtocolVersion
	if v != packet.Version31 && v != packet.Version311 && v != packet.Version5 {
		return nil, fmt.Errorf("%w: stored packet has protocol version %d", persistence.ErrBrokenEntry, v)
	}
	p, err := packet.ReadPacket(bufio.NewReader(bytes.NewReader(pp.Data)), v, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: stored packet: %v", persistence.ErrBrokenEntry, err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return nil, fmt.Errorf("%w: stored packet is a %s, not a PUBLISH", persistence.ErrBrokenEntry, p.Type())
	}
	return pub, nil
}

// errUndeliverable marks a message that must be dropped instead of sent: expired,
// too large for the client, or unreadable from the store.
var errUndeliverable = errors.New("undeliverable")

// itemFor prepares m for c with packet id pid and the DUP flag: the shared
// encoding for c's protocol version, or, when the message expires (its remaining
// expiry interval is written) or c takes topic aliases, a copy to encode.
func (b *Broker) itemFor(c *conn, m *wireMsg, pid uint16, dup bool) (outItem, error) {
	var now time.Time
	if !m.expireAt.IsZero() {
		now = b.now()
		if !now.Before(m.expireAt) {
			return outItem{}, fmt.Errorf("%w: message expired", errUndeliverable)
		}
	}
	wire, strip, err := m.forVersion(c.version)
	if err != nil {
		return outItem{}, fmt.Errorf("%w: %v", errUndeliverable, err)
	}
	if size := len(wire); c.maxOut > 0 && uint32(size) > c.maxOut && (!strip || uint32(size-1) > c.maxOut) {
		// Dropped as if delivered [MQTT-3.1.2-25].
		return outItem{}, fmt.Errorf("%w: %d bytes exceed the client's maximum packet size %d", errUndeliverable, len(wire), c.maxOut)
	}
	dup = dup && m.qos > 0
	if m.expireAt.IsZero() && c.aliasOut == 0 {
		return outItem{b: wire, pid: pid, dup: dup, patch: m.qos > 0, strip: strip, qos: m.qos}, nil
	}
	pub, err := m.publish()
	if err != nil {
		return outItem{}, fmt.Errorf("%w: %v", errUndeliverable, err)
	}
	q := *pub
	q.PacketID, q.Dup = pid, dup
	if !m.expireAt.IsZero() {
		left := uint32((m.expireAt.Sub(now) + time.Second - 1) / time.Second)
		q.Properties.MessageExpiry = &left
	}
	if c.aliasOut > 0 {
		return outItem{pub: &q}, nil
	}
	enc, err := packet.Encode(nil, &q, c.version)
	if err != nil {
		return outItem{}, fmt.Errorf("%w: %v", errUndeliverable, err)
	}
	return outItem{b: enc}, nil
}

// sendMsg sends a message that is not in flight (QoS 0).
func (b *Broker) sendMsg(c *conn, m *wireMsg, pid uint16, dup, droppable bool) {
	it, err := b.itemFor(c, m, pid, dup)
	if err != nil {
		b.stats.dropped.Add(1)
		b.log.Debug("broker: message dropped", "client", c.info.ID, "err", err)
		return
	}
	if c.sendItem(it, droppable) {
		b.stats.out.Add(1)
	} else {
		b.stats.dropped.Add(1)
	}
}

// sendFlight sends an in-flight packet: its PUBLISH (DUP on redelivery) or, once
// PUBREC'd, its PUBREL. With hold set the caller signals c's writer (queueItem).
func (b *Broker) sendFlight(c *conn, f *flight, dup, hold bool) {
	if f.rel {
		c.sendPacket(&packet.Pubrel{PacketID: f.pid})
		return
	}
	it, err := b.itemFor(c, f.msg, f.pid, dup)
	if err != nil {
		b.stats.dropped.Add(1)
		b.log.Info("broker: in-flight message dropped", "client", c.info.ID, "err", err)
		b.completeFlight(c, f)
		return
	}
	if c.queueItem(it, false, hold) {
		b.stats.out.Add(1)
	}
}
