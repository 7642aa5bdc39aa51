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
// carrying every subscription identifier).
type target struct {
	s      *session
	qos    byte
	retain bool // forward the RETAIN flag (retain-as-published, or a retained message on subscribe)
	ids    []uint32
}

// planKind says what fanOut decided for one target.
type planKind uint8

const (
	planSend     planKind = iota + 1 // QoS 0 to an online client
	planInflight                     // put in flight directly (ClassUnAck for stored sessions)
	planQueue                        // queued (ClassQoS12 for stored sessions, memory otherwise)
)

type plan struct {
	kind   planKind
	s      *session
	f      *flight
	pp     *persistence.PersistedPacket
	append bool     // has an append in the batch
	acked  []uint64 // the session's pending acknowledgement deletes, carried by the batch
}

// publish routes msg (already owned by the broker) from client from: it updates the
// retained store, then fans out to every matching session. It returns Success or the
// reason code for the publisher (UnspecifiedError when the store failed).
func (b *Broker) publish(from string, msg *packet.Publish, expireAt time.Time, mark *incomingMark) packet.ReasonCode {
	if msg.Retain {
		if rc := b.retain(msg, expireAt); rc != packet.Success {
			return rc
		}
	}
	return b.fanOut(msg, expireAt, b.match(from, msg.Topic, msg.QoS), mark)
}

// fanOut delivers msg to targets. Every message for a stored session (queued, or
// put in flight when the client is online with room in its window) and the QoS 2
// incoming mark go into ONE batch, committed before anything is sent and before
// the publisher is acknowledged.
func (b *Broker) fanOut(msg *packet.Publish, expireAt time.Time, targets []target, mark *incomingMark) packet.ReasonCode {
	var batch persistence.Batch
	plans := make([]plan, 0, len(targets))
	for _, t := range targets {
		out := *msg
		out.QoS = t.qos
		out.Retain = msg.Retain && t.retain
		out.Properties.SubscriptionIDs = t.ids
		pp, err := b.storedPublish(&out, expireAt)
		if err != nil {
			b.log.Error("broker: cannot encode message", "topic", msg.Topic, "err", err)
			return packet.ImplementationSpecific
		}
		if p, ok := b.planFor(t.s, pp, &batch); ok {
			plans = append(plans, p)
		}
	}
	if mark != nil {
		mark.s.mu.Lock()
		if mark.s.stored {
			batch.PacketAppend(mark.s.id, persistence.ClassIncoming, &persistence.PersistedPacket{
				PacketID: mark.pid, QoS: 2, ProtocolVersion: packet.Version5, Data: b.mustEncode(msg, mark.pid),
			})
		}
		mark.s.mu.Unlock()
	}
	var seqs []uint64
	if batch.Len() > 0 {
		ctx, cancel := b.storeCtx()
		var err error
		seqs, err = b.sess.Apply(ctx, &batch)
		cancel()
		if err != nil {
			b.storageError("Sessions.Apply(publish)", msg.Topic, err)
			b.undoPlans(plans)
			return packet.UnspecifiedError
		}
	}
	i := 0
	for _, p := range plans {
		var seq uint64
		if p.append {
			seq = seqs[i]
			i++
		}
		b.commitPlan(p, seq)
	}
	if mark != nil {
		var seq uint64
		if i < len(seqs) {
			seq = seqs[i]
		}
		mark.s.mu.Lock()
		mark.s.incoming[mark.pid] = seq
		mark.s.mu.Unlock()
	}
	return packet.Success
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

// planFor decides what happens to pp for session s and adds its store write to
// batch. ok is false when the message is not delivered to s (offline QoS 0, queue
// full, session gone).
func (b *Broker) planFor(s *session, pp *persistence.PersistedPacket, batch *persistence.Batch) (plan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return plan{}, false
	}
	online := s.conn != nil && s.ready
	if pp.QoS == 0 {
		if !online {
			return plan{}, false // QoS 0 is not queued for offline sessions
		}
		return plan{kind: planSend, s: s, pp: pp}, true
	}
	if online && !s.hasQueue() && len(s.inflight) < s.conn.window {
		pid := s.allocPID()
		if pid != 0 {
			pp.PacketID = pid
			f := &flight{pid: pid, qos: pp.QoS, pkt: pp, reserved: true}
			s.inflight[pid] = f
			p := plan{kind: planInflight, s: s, f: f, pp: pp}
			if s.stored {
				p.acked = s.takeAcked(batch)
				batch.PacketAppend(s.id, persistence.ClassUnAck, pp)
				p.append = true
			}
			return p, true
		}
	}
	if !s.stored && s.conn == nil {
		return plan{}, false
	}
	if b.limits.queueFull(s.queued+s.pendingQ, s.queuedBytes, len(pp.Data)) {
		b.stats.dropped.Add(1)
		if !s.fullLog {
			s.fullLog = true
			b.log.Warn("broker: session queue full; refusing new messages for it", "client", s.id,
				"queued", s.queued+s.pendingQ, "bytes", s.queuedBytes)
		}
		return plan{}, false
	}
	s.pendingQ++
	p := plan{kind: planQueue, s: s, pp: pp}
	if s.stored {
		batch.PacketAppend(s.id, persistence.ClassQoS12, pp)
		p.append = true
	}
	return p, true
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

// commitPlan carries out a plan whose writes are committed.
func (b *Broker) commitPlan(p plan, seq uint64) {
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
			b.sendPublish(c, p.pp, 0, false, true)
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
			b.sendFlight(c, p.f, false)
		}
		return
	case planQueue:
		s.pendingQ--
		s.queued++
		s.queuedBytes += int64(len(p.pp.Data))
		if !s.stored {
			s.memQueue = append(s.memQueue, p.pp)
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

// wireFor encodes the stored PUBLISH pp for c with packet id pid, the DUP flag and
// the remaining message expiry interval.
func (b *Broker) wireFor(c *conn, pp *persistence.PersistedPacket, pid uint16, dup bool) ([]byte, error) {
	now := b.now()
	if pp.Expired(now) {
		return nil, fmt.Errorf("%w: message expired", errUndeliverable)
	}
	pub, err := decodePublish(pp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUndeliverable, err)
	}
	pub.PacketID = pid
	pub.Dup = dup && pub.QoS > 0
	if !pp.ExpireAt.IsZero() {
		left := uint32((pp.ExpireAt.Sub(now) + time.Second - 1) / time.Second)
		pub.Properties.MessageExpiry = &left
	}
	wire, err := packet.Encode(nil, pub, c.version)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUndeliverable, err)
	}
	if c.maxOut > 0 && uint32(len(wire)) > c.maxOut {
		// Dropped as if delivered [MQTT-3.1.2-25].
		return nil, fmt.Errorf("%w: %d bytes exceed the client's maximum packet size %d", errUndeliverable, len(wire), c.maxOut)
	}
	return wire, nil
}

// sendPublish sends a message that is not in flight (QoS 0).
func (b *Broker) sendPublish(c *conn, pp *persistence.PersistedPacket, pid uint16, dup, droppable bool) {
	wire, err := b.wireFor(c, pp, pid, dup)
	if err != nil {
		b.stats.dropped.Add(1)
		b.log.Debug("broker: message dropped", "client", c.info.ID, "err", err)
		return
	}
	if c.send(wire, droppable) {
		b.stats.out.Add(1)
	} else {
		b.stats.dropped.Add(1)
	}
}

// sendFlight sends an in-flight packet: its PUBLISH (DUP on redelivery) or, once
// PUBREC'd, its PUBREL.
func (b *Broker) sendFlight(c *conn, f *flight, dup bool) {
	if f.rel {
		c.sendPacket(&packet.Pubrel{PacketID: f.pid})
		return
	}
	wire, err := b.wireFor(c, f.pkt, f.pid, dup)
	if err != nil {
		b.stats.dropped.Add(1)
		b.log.Info("broker: in-flight message dropped", "client", c.info.ID, "err", err)
		b.completeFlight(c, f)
		return
	}
	if c.send(wire, false) {
		b.stats.out.Add(1)
	}
}

// completeFlight ends a flight: it leaves the window at once, and its deletion
// from the store is queued in session.acked for the next write or the pump's flush
// (see there), which wake wakes.
func (b *Broker) completeFlight(c *conn, f *flight) {
	s := c.sess
	s.mu.Lock()
	if s.inflight[f.pid] == f {
		delete(s.inflight, f.pid)
		if s.stored {
			s.acked = append(s.acked, f.seq)
		}
	}
	s.mu.Unlock()
	c.wake()
}

// flushAcked commits the session's pending acknowledgement deletes. When the store
// fails, the deletes are kept for a later try and the client is disconnected, as
// for any storage failure.
func (b *Broker) flushAcked(c *conn) {
	s := c.sess
	var batch persistence.Batch
	s.mu.Lock()
	acked := s.takeAcked(&batch)
	s.mu.Unlock()
	if len(acked) == 0 {
		return
	}
	ctx, cancel := b.storeCtx()
	_, err := b.sess.Apply(ctx, &batch)
	cancel()
	if err != nil {
		s.mu.Lock()
		s.returnAcked(acked)
		s.mu.Unlock()
		b.storageError("Sessions.Apply(acknowledgements)", s.id, err)
		c.close(dispLost, packet.UnspecifiedError)
	}
}

// flightFor returns the committed flight with packet id pid, if any.
func (c *conn) flightFor(pid uint16) *flight {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.inflight[pid]
	if f == nil || f.reserved {
		return nil
	}
	return f
}

func (c *conn) handlePuback(p *packet.Puback) bool {
	f := c.flightFor(p.PacketID)
	if f == nil || f.qos != 1 {
		c.b.log.Debug("broker: PUBACK for unknown packet id", "client", c.info.ID, "id", p.PacketID)
		return true
	}
	c.b.completeFlight(c, f)
	return true
}

func (c *conn) handlePubrec(p *packet.Pubrec) bool {
	b := c.b
	f := c.flightFor(p.PacketID)
	if f == nil || f.qos != 2 {
		rc := packet.Success
		if c.version == packet.Version5 {
			rc = packet.PacketIDNotFound
		}
		return c.sendPacket(&packet.Pubrel{PacketID: p.PacketID, ReasonCode: rc})
	}
	if p.ReasonCode.IsError() {
		b.completeFlight(c, f) // the client refused the message: the flow ends here
		return true
	}
	if !f.rel {
		rel, err := packet.Encode(nil, &packet.Pubrel{PacketID: f.pid}, packet.Version5)
		if err != nil {
			return false
		}
		upd := &persistence.PersistedPacket{Seq: f.seq, PacketID: f.pid, QoS: 2, ProtocolVersion: packet.Version5, Data: rel}
		s := c.sess
		s.mu.Lock()
		stored := s.stored
		s.mu.Unlock()
		if stored {
			ctx, cancel := b.storeCtx()
			err := b.sess.PacketUpdate(ctx, s.id, persistence.ClassUnAck, upd)
			cancel()
			if err != nil {
				b.storageError("PacketUpdate(UnAck)", s.id, err)
				c.close(dispLost, packet.UnspecifiedError)
				return false
			}
		}
		s.mu.Lock()
		f.rel, f.pkt = true, upd
		s.mu.Unlock()
	}
	return c.sendPacket(&packet.Pubrel{PacketID: f.pid})
}

func (c *conn) handlePubcomp(p *packet.Pubcomp) bool {
	f := c.flightFor(p.PacketID)
	if f == nil || !f.rel {
		return true
	}
	c.b.completeFlight(c, f)
	return true
}

// redeliver sends the session's in-flight packets again, in their original order,
// PUBLISH with DUP and the same packet id, PUBREL as PUBREL [MQTT-4.4.0-1]; then it
// lets new messages go in flight directly.
func (b *Broker) redeliver(c *conn) {
	s := c.sess
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return
	}
	var drop []*flight
	for _, f := range s.committedFlights() {
		if f.rel {
			rel, err := packet.Encode(nil, &packet.Pubrel{PacketID: f.pid}, c.version)
			if err == nil {
				c.send(rel, false)
			}
			continue
		}
		wire, err := b.wireFor(c, f.pkt, f.pid, true)
		if err != nil {
			b.log.Info("broker: in-flight message dropped", "client", c.info.ID, "err", err)
			b.stats.dropped.Add(1)
			drop = append(drop, f)
			continue
		}
		if c.send(wire, false) {
			b.stats.out.Add(1)
		}
	}
	// Sent under the lock so that no new message overtakes a redelivery.
	s.ready = true
	s.mu.Unlock()
	for _, f := range drop {
		b.completeFlight(c, f)
	}
}

// pumpPage caps how many queued packets one store read loads.
const pumpPage = 256

// pump moves queued messages in flight while the client's window has room: for a
// stored session it reads a page from ClassQoS12 and moves it to ClassUnAck in one
// batch before sending, so the queue is never loaded whole.
func (b *Broker) pump(c *conn) {
	s := c.sess
	for {
		s.mu.Lock()
		room := c.window - len(s.inflight)
		if s.conn != c || !s.ready || room <= 0 || s.queued == 0 {
			if s.queued == 0 {
				s.fullLog = false
			}
			flush := len(s.acked) > 0
			s.mu.Unlock()
			if flush {
				b.flushAcked(c)
			}
			return
		}
		room = min(room, pumpPage)
		if !s.stored {
			var sends []*flight
			for room > 0 && len(s.memQueue) > 0 {
				pp := s.memQueue[0]
				s.memQueue[0] = nil
				s.memQueue = s.memQueue[1:]
				s.queued--
				s.queuedBytes -= int64(len(pp.Data))
				pid := s.allocPID()
				s.localSeq++
				f := &flight{seq: s.localSeq, pid: pid, qos: pp.QoS, pkt: pp}
				s.inflight[pid] = f
				sends = append(sends, f)
				room--
			}
			s.mu.Unlock()
			for _, f := range sends {
				b.sendFlight(c, f, false)
			}
			continue
		}
		// Never ask for more than the count: messages committed by a fan-out
		// whose commitPlan has not run yet are in the store but not counted, and
		// moving them here would let the count fall below what the store holds,
		// stranding messages in the queue.
		want := min(room, s.queued)
		s.mu.Unlock()
		if !b.pumpStored(c, want) {
			return
		}
	}
}

// pumpStored moves up to room packets of a stored session's queue in flight. It
// reports whether the pump should go on.
func (b *Broker) pumpStored(c *conn, room int) bool {
	s := c.sess
	page := make([]*persistence.PersistedPacket, 0, room)
	ctx, cancel := b.storeCtx()
	err := b.sess.PacketsForEach(ctx, s.id, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		page = append(page, p)
		if len(page) >= room {
			return false, persistence.ErrStopIteration
		}
		return false, nil
	})
	cancel()
	if err != nil {
		b.storageError("PacketsForEach(QoS12)", s.id, err)
		c.close(dispLost, packet.UnspecifiedError)
		return false
	}
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return false
	}
	if len(page) == 0 {
		b.recountQueue(s)
		s.mu.Unlock()
		return false
	}
	now := b.now()
	var batch persistence.Batch
	acked := s.takeAcked(&batch)
	var moved []*flight
	var size int64
	for _, p := range page {
		batch.PacketDelete(s.id, persistence.ClassQoS12, p.Seq)
		size += int64(len(p.Data))
		if p.Expired(now) {
			b.stats.dropped.Add(1)
			continue
		}
		pid := s.allocPID()
		q := p.Clone()
		q.Seq, q.PacketID = 0, pid
		f := &flight{pid: pid, qos: q.QoS, pkt: q, reserved: true}
		s.inflight[pid] = f
		moved = append(moved, f)
		batch.PacketAppend(s.id, persistence.ClassUnAck, q)
	}
	s.mu.Unlock()
	ctx, cancel = b.storeCtx()
	seqs, err := b.sess.Apply(ctx, &batch)
	cancel()
	s.mu.Lock()
	if err != nil {
		for _, f := range moved {
			delete(s.inflight, f.pid)
		}
		s.returnAcked(acked)
		s.mu.Unlock()
		b.storageError("Sessions.Apply(move in flight)", s.id, err)
		c.close(dispLost, packet.UnspecifiedError)
		return false
	}
	s.queued -= len(page)
	s.queuedBytes -= size
	if s.queued < 0 || s.queuedBytes < 0 {
		b.recountQueue(s)
	}
	for i, f := range moved {
		f.seq, f.reserved = seqs[i], false
	}
	s.mu.Unlock()
	for _, f := range moved {
		b.sendFlight(c, f, false)
	}
	return true
}

// recountQueue sets a stored session's queue count from the store after it was
// found to disagree with it (a write whose outcome was unknown, such as one that
// timed out). It only does so when no fan-out is about to add to the queue, since
// such a message may already be in the store without being counted; otherwise
// that fan-out's commit wakes the pump again. Caller holds mu.
func (b *Broker) recountQueue(s *session) {
	if s.pendingQ > 0 || !s.stored {
		return
	}
	ctx, cancel := b.storeCtx()
	n, err := b.sess.PacketCount(ctx, s.id, persistence.ClassQoS12)
	cancel()
	if err != nil {
		b.storageError("PacketCount(QoS12)", s.id, err)
		return
	}
	if int(n) != s.queued {
		b.log.Warn("broker: queue count corrected from the store", "client", s.id, "counted", s.queued, "stored", n)
	}
	s.queued = int(n)
	if n == 0 || s.queuedBytes < 0 {
		s.queuedBytes = 0
	}
}
