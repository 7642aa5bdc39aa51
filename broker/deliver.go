package broker

import (
	"errors"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// completeFlight ends a flight: it leaves the window at once, and its deletion
// from the store is queued in session.acked for the next write for the session
// or the pump's flush (see there). The pump is woken when it has messages to move
// into the freed window (pumpWant), or when half a window of deletes is pending; otherwise
// the deletes wait for the next fan-out to the session, which carries them, or at
// most ackFlushDelay for the pump (one wake-up and one commit per acknowledgement
// was a sixth of the broker's CPU per message in bench/run.sh's scenario 1).
func (b *Broker) completeFlight(c *conn, f *flight) {
	s := c.sess
	s.mu.Lock()
	if s.inflight[f.pid] == f {
		delete(s.inflight, f.pid)
		if s.stored {
			s.acked = append(s.acked, f.seq)
		}
	}
	wake := s.stale || s.pumpWant(c.window) > 0 || len(s.acked) >= max(1, c.window/2)
	pending := len(s.acked) > 0
	s.mu.Unlock()
	if pending {
		c.flushAckedSoon()
	}
	if wake {
		c.wake()
	}
}

// ackFlushDelay bounds how long an acknowledgement's delete waits for a write
// to carry it before the pump commits it (a crash meanwhile redelivers the
// message with DUP, which QoS 1 and 2 allow).
const ackFlushDelay = 20 * time.Millisecond

// flushAckedSoon makes the pump flush the pending deletes within
// ackFlushDelay, unless that is already arranged.
func (c *conn) flushAckedSoon() {
	if c.ackTimerArmed.CompareAndSwap(false, true) {
		c.ackTimer.Reset(ackFlushDelay)
	}
}

// ackTimerFired is ackTimer's function: the pending deletes are due.
func (c *conn) ackTimerFired() {
	c.ackTimerArmed.Store(false)
	c.ackDue.Store(true)
	c.wake()
}

// flushAcked commits the session's pending acknowledgement deletes. When the store
// fails, the deletes are kept for a later try and the client is disconnected, as
// for any storage failure.
func (b *Broker) flushAcked(c *conn) {
	s := c.sess
	batch := getBatch()
	defer putBatch(batch)
	s.mu.Lock()
	acked := s.takeAcked(batch)
	s.mu.Unlock()
	if len(acked) == 0 {
		return
	}
	ctx, cancel := b.storeCtx()
	_, err := b.applyOwned(ctx, s, batch, "acknowledgements")
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
			var batch persistence.Batch
			_, err := b.applyOwned(ctx, s, batch.PacketUpdate(s.id, persistence.ClassUnAck, upd), "PacketUpdate(UnAck)")
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
		if f.msg == nil {
			f.msg = wireFromStored(f.pkt)
		}
		it, err := b.itemFor(c, f.msg, f.pid, true)
		if err != nil {
			b.log.Info("broker: in-flight message dropped", "client", c.info.ID, "err", err)
			b.stats.dropped.Add(1)
			drop = append(drop, f)
			continue
		}
		if c.sendItem(it, false) {
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
	due := c.ackDue.Swap(false)
	for {
		s.mu.Lock()
		if s.stale && s.pendingQ == 0 && s.conn == c {
			s.stale = false
			b.recountQueue(s)
		}
		want := s.pumpWant(c.window)
		if s.conn != c || !s.ready || want == 0 {
			if s.queued == 0 {
				s.fullLog = false
			}
			// Deletes wait for the next move in flight, which carries them,
			// unless nothing is queued, half a window of them is pending, or
			// they waited ackFlushDelay.
			flush := len(s.acked) > 0 && (s.queued == 0 || due || len(s.acked) >= max(1, c.window/2))
			s.mu.Unlock()
			if flush {
				b.flushAcked(c)
			}
			return
		}
		if !s.stored {
			var sends []*flight
			for room := want; room > 0 && len(s.memQueue) > 0; {
				q := b.popMemQueue(s)
				pid := s.allocPID()
				s.localSeq++
				f := &flight{seq: s.localSeq, pid: pid, qos: q.m.qos, msg: q.m, share: q.share}
				s.inflight[pid] = f
				sends = append(sends, f)
				room--
			}
			s.mu.Unlock()
			for _, f := range sends {
				b.sendFlight(c, f, false, true)
			}
			c.signalOut()
			continue
		}
		s.mu.Unlock()
		if !b.pumpStored(c, want) {
			return
		}
	}
}

// pumpWant returns how many queued messages the pump moves in flight now for a
// client with in-flight window window: as many as there is room for (at most
// pumpPage), and never more than the count: messages committed by a fan-out
// whose commitPlan has not run yet are in the store but not counted, and moving
// them would let the count fall below what the store holds, stranding messages
// in the queue. A stored queue moves in flight by the half window, not by the
// acknowledgement: one page read and one commit (which carries the pending
// acknowledgement deletes) per half window, instead of per message; until then
// pumpWant is 0 (acknowledgements wake the pump only when it is not, see
// completeFlight). Caller holds mu.
func (s *session) pumpWant(window int) int {
	room := min(window-len(s.inflight), pumpPage)
	if room <= 0 || s.queued <= 0 {
		return 0
	}
	want := min(room, s.queued)
	if s.stored && len(s.inflight) > 0 && want < min(window/2, s.queued) {
		return 0
	}
	return want
}

// pumpStored moves up to room packets of a stored session's queue in flight. It
// reports whether the pump should go on.
func (b *Broker) pumpStored(c *conn, room int) bool {
	s := c.sess
	page, err := b.queuePage(c, room)
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
	// The next page is read while this move commits (before p.Seq is cleared).
	b.readAheadIfShort(c, page, room)
	now := b.now()
	batch := getBatch()
	defer putBatch(batch)
	b.fence(s, batch)
	acked := s.takeAcked(batch)
	var moved []*flight
	var qos0 []*persistence.PersistedPacket // queued for a connected client by another node: sent, not put in flight
	var size int64
	// Every delete, then every append: one run of each, which a driver can write
	// as one statement each (the whole move is one commit).
	for _, p := range page {
		batch.PacketDelete(s.id, persistence.ClassQoS12, p.Seq)
	}
	for _, p := range page {
		size += int64(len(p.Data))
		m := c.queuedMsg(p)
		if p.Expired(now) {
			b.stats.dropped.Add(1)
			continue
		}
		if p.QoS == 0 {
			qos0 = append(qos0, p)
			continue
		}
		pid := s.allocPID()
		p.Seq, p.PacketID = 0, pid // p is the iteration's copy, ours to keep
		f := &flight{pid: pid, qos: p.QoS, pkt: p, msg: m, reserved: true}
		s.inflight[pid] = f
		moved = append(moved, f)
		batch.PacketAppendShared(s.id, persistence.ClassUnAck, p) // the iteration's copy, not changed again
	}
	s.mu.Unlock()
	ctx, cancel := b.storeCtx()
	seqs, err := b.sess.Apply(ctx, batch)
	cancel()
	s.mu.Lock()
	if err != nil {
		for _, f := range moved {
			delete(s.inflight, f.pid)
		}
		s.returnAcked(acked)
		s.mu.Unlock()
		if b.cl != nil && errors.Is(err, persistence.ErrFenced) {
			b.lostSession(s, "move in flight", err)
			return false
		}
		b.storageError("Sessions.Apply(move in flight)", s.id, err)
		c.close(dispLost, packet.UnspecifiedError)
		return false
	}
	s.queued -= len(page)
	// The bytes of a queue counted with PacketCount (restored without packet
	// statistics, or claimed in cluster mode after another node appended to it)
	// are not known and start at 0: that is no disagreement with the store to
	// recount (which would cost a count query per move), only the count is.
	s.queuedBytes = max(s.queuedBytes-size, 0)
	if s.queued < 0 {
		b.recountQueue(s)
	}
	for i, f := range moved {
		f.seq, f.reserved = seqs[i], false
	}
	s.mu.Unlock()
	for _, p := range qos0 {
		b.sendMsg(c, wireFromStored(p), 0, false, true)
	}
	for _, f := range moved {
		b.sendFlight(c, f, false, true)
	}
	c.signalOut()
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
