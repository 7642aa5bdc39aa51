package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// takeoverWait bounds how long a connection waits for the connection it takes a
// session over from to finish, or for its id's previous session to be deleted.
const takeoverWait = 10 * time.Second

// waitTakeover waits up to takeoverWait for done to be closed and reports
// whether it was.
func waitTakeover(done <-chan struct{}) bool {
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// connect reads and answers the CONNECT. It reports whether the client is now
// connected.
func (c *conn) connect() bool {
	b := c.b
	c.nc.SetReadDeadline(time.Now().Add(connectTimeout))
	p, err := packet.ReadPacket(c.br, 0, uint32(b.limits.MaxPacketSize))
	if err != nil {
		var pe *packet.Error
		if errors.As(err, &pe) {
			b.log.Info("broker: bad CONNECT", "remote", c.info.RemoteAddr, "err", err)
			if errors.Is(err, packet.ErrUnsupportedVersion) {
				// The client's version is unknown; a 3.1.1 CONNACK with return
				// code 1 is what every version understands [MQTT-3.1.2-2].
				c.version = packet.Version311
				c.sendPacket(&packet.Connack{ReasonCode: packet.UnsupportedProtocolVersion})
			}
		}
		return false
	}
	cp, ok := p.(*packet.Connect)
	if !ok {
		return false
	}
	c.nc.SetReadDeadline(time.Time{})
	c.version = cp.ProtocolVersion
	v5 := c.version == packet.Version5

	id := strings.Clone(cp.ClientID)
	assigned := false
	if id == "" {
		if !v5 && !cp.CleanStart {
			return c.refuse(packet.ClientIDNotValid) // [MQTT-3.1.3-8]
		}
		id = b.assignID()
		assigned = true
	}
	c.info.ID = id
	c.info.Username = strings.Clone(cp.Username)
	c.info.ProtocolVersion = c.version
	if len(id) > b.limits.MaxClientIDLen {
		b.log.Info("broker: client id too long", "len", len(id), "limit", b.limits.MaxClientIDLen, "remote", c.info.RemoteAddr)
		return c.refuse(packet.ClientIDNotValid)
	}
	if v5 && cp.Properties.AuthMethod != "" {
		return c.refuse(packet.BadAuthenticationMethod) // enhanced authentication is not offered
	}
	if err := b.authenticate(c.ctx, c.info, c.info.Username, cp.Password); err != nil {
		b.log.Info("broker: authentication refused", "client", id, "err", err)
		if errors.Is(err, ErrNotAuthorized) {
			return c.refuse(packet.NotAuthorized)
		}
		return c.refuse(packet.BadUsernameOrPassword)
	}

	var will *persistence.PersistedPacket
	var willDelay time.Duration
	if w := cp.Will; w != nil {
		if err := persistence.ValidTopic(w.Topic); err != nil {
			return c.refuse(packet.TopicNameInvalid)
		}
		if isSys(w.Topic) {
			return c.refuse(packet.NotAuthorized)
		}
		if w.QoS > b.limits.maxQoS() {
			return c.refuse(packet.QoSNotSupported)
		}
		if w.Retain && b.limits.RetainUnavailable {
			return c.refuse(packet.RetainNotSupported)
		}
		if err := b.authorizePublish(c.ctx, c.info, w.Topic, w.QoS, w.Retain); err != nil {
			b.log.Info("broker: will refused", "client", id, "topic", w.Topic, "err", err)
			return c.refuse(packet.NotAuthorized)
		}
		props := w.Properties.Clone()
		if props.WillDelay != nil {
			willDelay = time.Duration(*props.WillDelay) * time.Second
			props.WillDelay = nil
		}
		pub := &packet.Publish{Topic: w.Topic, QoS: w.QoS, Retain: w.Retain, Payload: w.Payload, Properties: props}
		pp, err := b.storedPublish(pub, time.Time{})
		if err != nil {
			b.log.Info("broker: will cannot be encoded", "client", id, "err", err)
			return c.refuse(packet.MalformedPacket)
		}
		will = pp
	}

	var expiry time.Duration // how long the session outlives the connection; <0 forever
	switch {
	case v5 && cp.Properties.SessionExpiry != nil:
		if v := *cp.Properties.SessionExpiry; v == 0xFFFFFFFF {
			expiry = -1
		} else {
			expiry = time.Duration(v) * time.Second
		}
	case !v5 && !cp.CleanStart:
		expiry = -1 // 3.1.1 persistent sessions last until the client cleans them
	}

	ka, kaChanged := b.limits.keepAliveFor(cp.KeepAlive)
	c.keepDur = readTimeout(ka)
	c.window = b.limits.ReceiveMaximum
	if v5 {
		if rm := cp.Properties.ReceiveMaximum; rm != nil && int(*rm) < c.window {
			c.window = int(*rm)
		}
		if mp := cp.Properties.MaximumPacketSize; mp != nil {
			c.maxOut = *mp
		}
		if tam := cp.Properties.TopicAliasMaximum; tam != nil {
			c.aliasOut = *tam
		}
	}

	st := persistence.SessionState{
		ProtocolVersion: c.version,
		ExpiryInterval:  expiry,
		Username:        c.info.Username,
		Will:            will,
		WillDelay:       willDelay,
	}
	present, rc := b.attach(c, id, cp.CleanStart, st)
	if rc != packet.Success {
		return c.refuse(rc)
	}
	ack := &packet.Connack{SessionPresent: present}
	if v5 {
		ack.Properties = b.connackProps()
		if assigned {
			ack.Properties.AssignedClientID = id
		}
		if kaChanged {
			ack.Properties.ServerKeepAlive = &ka
		}
	}
	// Counted before the CONNACK: a client that has its CONNACK sees itself
	// in Stats.Connected until its session is detached.
	c.counted = true
	b.stats.connected.Add(1)
	b.stats.connections.Add(1)
	if !c.sendPacket(ack) {
		return false
	}
	b.log.Debug("broker: client connected", "client", id, "version", c.version, "present", present, "remote", c.info.RemoteAddr)
	return true
}

// refuse answers the CONNECT with a failure and reports false.
func (c *conn) refuse(rc packet.ReasonCode) bool {
	c.sendPacket(&packet.Connack{ReasonCode: rc})
	c.close(dispNormal, 0)
	return false
}

// connackProps announces the broker's limits and features to a 5.0 client.
func (b *Broker) connackProps() packet.Properties {
	l := &b.limits
	flag := func(off bool) *byte {
		v := byte(1)
		if off {
			v = 0
		}
		return &v
	}
	rm := uint16(l.ReceiveMaximum)
	mps := uint32(l.MaxPacketSize)
	p := packet.Properties{
		ReceiveMaximum:       &rm,
		MaximumPacketSize:    &mps,
		RetainAvailable:      flag(l.RetainUnavailable),
		WildcardSubAvailable: flag(l.WildcardSubUnavailable),
		SubIDAvailable:       flag(l.SubIDUnavailable),
		SharedSubAvailable:   flag(l.SharedSubUnavailable),
	}
	if l.TopicAliasMaximum > 0 {
		tam := uint16(l.TopicAliasMaximum)
		p.TopicAliasMaximum = &tam
	}
	if q := l.maxQoS(); q < 2 {
		p.MaximumQoS = &q
	}
	return p
}

func (b *Broker) assignID() string {
	var r [8]byte
	rand.Read(r[:])
	return "auto-" + hex.EncodeToString(r[:])
}

// attach binds c to the session id, taking it over from an existing connection,
// cleaning it when asked and writing the session's new state to the store before
// the CONNACK. It returns whether a session was present.
func (b *Broker) attach(c *conn, id string, cleanStart bool, st persistence.SessionState) (bool, packet.ReasonCode) {
	for range 5 {
		b.mu.Lock()
		if b.closing {
			b.mu.Unlock()
			return false, packet.ServerUnavailable
		}
		if b.isQuarantined(id) { // quarantine.go
			b.mu.Unlock()
			b.log.Warn("broker: client refused: its session is quarantined as damaged", "client", id)
			return false, packet.ServerUnavailable
		}
		s := b.sessions[id]
		gone, ending := s.ended()
		if ending != nil {
			// The id's previous session ends and its records are being
			// deleted: a new session must neither resume them nor have its
			// own deleted by them.
			b.mu.Unlock()
			if !waitTakeover(ending) {
				return false, packet.ServerBusy
			}
			continue
		}
		if gone {
			s = newSession(id)
			b.sessions[id] = s
		}
		b.mu.Unlock()

		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		if old := s.conn; old != nil {
			s.mu.Unlock()
			b.log.Info("broker: session taken over", "client", id)
			old.close(dispLost, packet.SessionTakenOver)
			if !waitTakeover(old.finished) {
				return false, packet.ServerBusy
			}
			continue
		}
		present, rc := b.attachLocked(c, s, cleanStart, st)
		if rc != packet.Success && !s.stored {
			// A session that exists nowhere but here must not linger.
			s.gone = true
			b.unindex(s)
			s.mu.Unlock()
			b.forget(s)
			return false, rc
		}
		s.mu.Unlock()
		return present, rc
	}
	return false, packet.ServerBusy
}

// attachLocked is attach for an offline session whose lock is held.
func (b *Broker) attachLocked(c *conn, s *session, cleanStart bool, st persistence.SessionState) (bool, packet.ReasonCode) {
	ctx, cancel := b.storeCtx()
	defer cancel()
	if b.cl != nil {
		if rc := b.takeOver(ctx, s); rc != packet.Success { // cluster_claim.go
			return false, rc
		}
	}
	if cleanStart && s.stored {
		var batch persistence.Batch
		b.fence(s, &batch)
		if _, err := b.sess.Apply(ctx, batch.Delete(s.id)); err != nil {
			b.storageError("Sessions.Delete", s.id, err)
			return false, packet.UnspecifiedError
		}
		s.stored = false
		b.unindex(s)
		s.resetContent()
	}
	present := s.stored
	if present {
		// Heals a count left wrong by a write whose outcome was unknown, before
		// the pump trusts it.
		b.recountQueue(s)
	}
	st.UserData = s.state.UserData
	if s.stored || st.ExpiryInterval != 0 || b.cl != nil {
		// In a cluster every session is stored, so that every node can route to it.
		var batch persistence.Batch
		b.fence(s, &batch)
		if b.cl != nil {
			batch.Notify(clusterChannel, note{K: "own", N: b.cl.node, ID: s.id, E: s.own.Epoch, C: true}.encode())
		}
		if !s.stored {
			batch.Create(s.id, persistence.SessionBase{CreatedAt: b.now(), ProtocolVersion: c.version})
		}
		batch.StateStore(s.id, &st)
		batch.ExpiryDelete(s.id) // connected sessions have no deadlines
		if _, err := b.sess.Apply(ctx, &batch); err != nil {
			b.storageError("Sessions.Apply(connect)", s.id, err)
			return false, packet.UnspecifiedError
		}
		s.stored = true
	}
	s.state = st
	s.expiry = persistence.SessionExpiry{}
	s.conn = c
	s.ready = false
	c.sess = s
	return present, packet.Success
}

// resetContent forgets everything a cleaned session held. Caller holds mu.
func (s *session) resetContent() {
	s.subs = map[string]persistence.Subscription{}
	s.inflight = map[uint16]*flight{}
	s.incoming = map[uint16]uint64{}
	s.queued, s.queuedBytes, s.pendingQ = 0, 0, 0
	s.memQueue = nil
	s.acked = nil
	s.state = persistence.SessionState{}
	s.expiry = persistence.SessionExpiry{}
}

// forget removes s from the session map if it is still the one registered.
func (b *Broker) forget(s *session) {
	b.mu.Lock()
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.mu.Unlock()
}

// handleDisconnect handles a client's DISCONNECT.
func (c *conn) handleDisconnect(p *packet.Disconnect) {
	d := dispNormal
	if c.version == packet.Version5 {
		if p.ReasonCode == packet.DisconnectWithWill {
			d = dispWill
		} else if p.ReasonCode != packet.NormalDisconnection {
			d = dispLost // a client reporting an error: its will is published
		}
		if se := p.Properties.SessionExpiry; se != nil {
			s := c.sess
			s.mu.Lock()
			was := s.state.ExpiryInterval
			s.mu.Unlock()
			if was == 0 && *se != 0 {
				// Raising the expiry from 0 at DISCONNECT is a protocol error
				// [MQTT-3.14.2-2].
				c.close(dispLost, packet.ProtocolError)
				return
			}
			v := time.Duration(*se) * time.Second
			if *se == 0xFFFFFFFF {
				v = -1
			}
			c.expiryOnDisconnect = &v
		}
	}
	c.close(d, 0)
}

// detach ends c's hold on its session: a session that does not outlive the
// connection is forgotten; a stored one records its disconnect time, will and
// deadlines. Wills are published here when due now.
func (b *Broker) detach(c *conn) {
	s := c.sess
	if s == nil {
		return
	}
	d := c.disposition()
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return
	}
	s.conn, s.ready = nil, false
	s.head = nil // the queue's head read for c (deliver_ahead.go) is read again for the next connection
	if c.expiryOnDisconnect != nil {
		s.state.ExpiryInterval = *c.expiryOnDisconnect
	}
	will := s.state.Will
	if d == dispNormal {
		will = nil
	}
	publishNow := will != nil && d != dispShutdown && (s.state.WillDelay == 0 || s.state.ExpiryInterval == 0)
	if !s.stored || s.state.ExpiryInterval == 0 {
		stored := s.stored
		s.gone = true
		if stored {
			s.ending = make(chan struct{})
		}
		b.unindex(s)
		shared := s.takeShared()
		b.dropMemQueue(s)
		s.mu.Unlock()
		if !stored {
			b.forget(s)
		}
		b.handOn(s, shared)
		if publishNow {
			b.publishWill(s.id, will, nil)
		}
		if stored {
			b.endStored(s, "disconnect") // cluster_claim.go
		}
		return
	}
	now := b.now()
	s.state.DisconnectedAt = now
	if publishNow || will == nil {
		s.state.Will = nil
	}
	// Publish a will due now before recording that it is gone, so a crash in
	// between publishes it again rather than never.
	if publishNow {
		s.mu.Unlock()
		b.publishWill(s.id, will, nil)
		s.mu.Lock()
		if s.conn != nil || s.gone { // resumed or removed meanwhile
			s.mu.Unlock()
			return
		}
	}
	s.expiry = s.deadlinesAt(now, s.state.Will != nil)
	var batch persistence.Batch
	b.fence(s, &batch)
	acked := s.takeAcked(&batch)
	batch.StateStore(s.id, &s.state)
	batch.ExpiryStore(s.id, s.expiry)
	if b.cl != nil {
		batch.Notify(clusterChannel, note{K: "off", N: b.cl.node, ID: s.id}.encode())
	}
	ctx, cancel := b.storeCtx()
	_, err := b.sess.Apply(ctx, &batch)
	cancel()
	if err != nil {
		s.returnAcked(acked)
	}
	s.mu.Unlock()
	switch {
	case errors.Is(err, persistence.ErrFenced):
		b.lostSession(s, "disconnect", err)
	case err != nil:
		b.storageError("Sessions.Apply(disconnect)", s.id, err)
	}
	b.kickExpiry()
}

func isSys(topic string) bool { return strings.HasPrefix(topic, "$SYS") }
