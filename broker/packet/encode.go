package packet

// encoder runs every packet body twice: first counting (and, with check
// set, validating) to learn the remaining length that precedes the body,
// then appending. One function per packet serves both passes, so the size
// and the bytes cannot disagree.
type encoder struct {
	buf   []byte // append pass: output
	n     int    // counting pass: bytes so far
	count bool
	check bool
	err   *Error
}

func (e *encoder) fail(code ReasonCode, msg string) {
	if e.err == nil {
		e.err = newError(code, msg)
	}
}

func (e *encoder) setErr(err *Error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) u8(v byte) {
	if e.count {
		e.n++
		return
	}
	e.buf = append(e.buf, v)
}

func (e *encoder) u16(v uint16) {
	if e.count {
		e.n += 2
		return
	}
	e.buf = append(e.buf, byte(v>>8), byte(v))
}

func (e *encoder) u32(v uint32) {
	if e.count {
		e.n += 4
		return
	}
	e.buf = append(e.buf, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func vbiLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

func appendVBI(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func (e *encoder) vbi(v uint32) {
	if e.count {
		e.n += vbiLen(v)
		return
	}
	e.buf = appendVBI(e.buf, v)
}

// str writes a UTF-8 encoded string. Checking rejects what the decoder
// rejects: more than 65535 bytes, invalid UTF-8, U+0000.
func (e *encoder) str(s string, what string) {
	if e.count {
		if e.check {
			if len(s) > 0xFFFF {
				e.fail(MalformedPacket, what+" longer than 65535 bytes")
			} else if !validString(s) {
				e.fail(MalformedPacket, what+" is not a valid UTF-8 string")
			}
		}
		e.n += 2 + len(s)
		return
	}
	e.buf = append(e.buf, byte(len(s)>>8), byte(len(s)))
	e.buf = append(e.buf, s...)
}

// bin writes two-byte-length-prefixed binary data.
func (e *encoder) bin(b []byte, what string) {
	if e.count {
		if e.check && len(b) > 0xFFFF {
			e.fail(MalformedPacket, what+" longer than 65535 bytes")
		}
		e.n += 2 + len(b)
		return
	}
	e.buf = append(e.buf, byte(len(b)>>8), byte(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *encoder) raw(b []byte) {
	if e.count {
		e.n += len(b)
		return
	}
	e.buf = append(e.buf, b...)
}

func (e *encoder) packetID(id uint16) {
	if e.check && id == 0 {
		e.fail(ProtocolError, "packet identifier 0")
	}
	e.u16(id)
}

func (e *encoder) reasonCode(t Type, rc ReasonCode) {
	if e.check && !validReason(t, rc) {
		e.fail(ProtocolError, "reason code "+rc.String()+" is not valid in "+t.String())
	}
	e.u8(byte(rc))
}

func encode(dst []byte, p Packet, version byte) ([]byte, error) {
	if p == nil || isNilPacket(p) {
		return dst, newError(MalformedPacket, "Encode: nil or foreign packet")
	}
	t := p.Type()
	if c, ok := p.(*Connect); ok {
		if version == 0 {
			version = c.ProtocolVersion
		} else if c.ProtocolVersion != 0 && c.ProtocolVersion != version {
			return dst, newError(UnsupportedProtocolVersion, "Encode: CONNECT protocol version differs from the version argument")
		}
	}
	switch version {
	case Version31, Version311, Version5:
	default:
		return dst, newError(UnsupportedProtocolVersion, "Encode: unknown protocol level")
	}
	if t == AUTH && version != Version5 {
		return dst, newError(ProtocolError, "Encode: AUTH exists only in MQTT 5.0")
	}
	c := encoder{count: true, check: true}
	hdr := c.body(p, version)
	if c.err != nil {
		return dst, &Error{Code: c.err.Code, Msg: t.String() + ": " + c.err.Msg}
	}
	if c.n > MaxRemainingLength {
		return dst, newError(PacketTooLarge, t.String()+": packet larger than the protocol allows")
	}
	// One allocation for the whole packet, not one per append that outgrows
	// the buffer.
	if need := 1 + vbiLen(uint32(c.n)) + c.n; cap(dst)-len(dst) < need {
		nd := make([]byte, len(dst), len(dst)+need)
		copy(nd, dst)
		dst = nd
	}
	a := encoder{buf: append(dst, hdr)}
	a.buf = appendVBI(a.buf, uint32(c.n))
	a.body(p, version)
	return a.buf, nil
}

// body writes the variable header and payload of p and returns the first
// byte of the fixed header. p is not a nil pointer (encode checks).
func (e *encoder) body(p Packet, v byte) byte {
	v5 := v == Version5
	switch p := p.(type) {
	case *Connect:
		e.connect(p, v)
	case *Connack:
		e.connack(p, v5)
	case *Publish:
		return e.publish(p, v5)
	case *Puback:
		e.ack(PUBACK, p.PacketID, p.ReasonCode, &p.Properties, v5)
	case *Pubrec:
		e.ack(PUBREC, p.PacketID, p.ReasonCode, &p.Properties, v5)
	case *Pubrel:
		e.ack(PUBREL, p.PacketID, p.ReasonCode, &p.Properties, v5)
		return byte(PUBREL)<<4 | 0x02
	case *Pubcomp:
		e.ack(PUBCOMP, p.PacketID, p.ReasonCode, &p.Properties, v5)
	case *Subscribe:
		e.subscribe(p, v5)
		return byte(SUBSCRIBE)<<4 | 0x02
	case *Suback:
		e.suback(p, v5)
	case *Unsubscribe:
		e.unsubscribe(p, v5)
		return byte(UNSUBSCRIBE)<<4 | 0x02
	case *Unsuback:
		e.unsuback(p, v5)
	case *Pingreq, *Pingresp:
	case *Disconnect:
		if v5 {
			e.optionalReason(DISCONNECT, p.ReasonCode, &p.Properties)
		}
	case *Auth:
		e.optionalReason(AUTH, p.ReasonCode, &p.Properties)
	}
	return byte(p.Type()) << 4
}

// isNilPacket reports whether p is a typed nil pointer or a type this
// package did not define (Packet is not sealed), which Encode refuses
// instead of panicking.
func isNilPacket(p Packet) bool {
	switch p := p.(type) {
	case *Connect:
		return p == nil
	case *Connack:
		return p == nil
	case *Publish:
		return p == nil
	case *Puback:
		return p == nil
	case *Pubrec:
		return p == nil
	case *Pubrel:
		return p == nil
	case *Pubcomp:
		return p == nil
	case *Subscribe:
		return p == nil
	case *Suback:
		return p == nil
	case *Unsubscribe:
		return p == nil
	case *Unsuback:
		return p == nil
	case *Pingreq:
		return p == nil
	case *Pingresp:
		return p == nil
	case *Disconnect:
		return p == nil
	case *Auth:
		return p == nil
	}
	return true
}

func (e *encoder) connect(p *Connect, v byte) {
	name := p.ProtocolName
	want := "MQTT"
	if v == Version31 {
		want = "MQIsdp"
	}
	if name == "" {
		name = want
	} else if e.check && name != want {
		e.fail(UnsupportedProtocolVersion, "protocol name "+name+" does not match the protocol level")
	}
	v5 := v == Version5
	hasUser := p.HasUsername || p.Username != ""
	hasPass := p.HasPassword || len(p.Password) > 0
	var flags byte
	if p.CleanStart {
		flags |= 0x02
	}
	if w := p.Will; w != nil {
		if e.check && w.QoS > 2 {
			e.fail(MalformedPacket, "will QoS above 2")
		}
		flags |= 0x04 | (w.QoS&3)<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if hasPass {
		if e.check && !v5 && !hasUser {
			e.fail(ProtocolError, "password without user name before MQTT 5.0")
		}
		flags |= 0x40
	}
	if hasUser {
		flags |= 0x80
	}
	e.str(name, "protocol name")
	e.u8(v)
	e.u8(flags)
	e.u16(p.KeepAlive)
	if v5 {
		e.properties(&p.Properties, kindBit(CONNECT))
	}
	e.str(p.ClientID, "client identifier")
	if w := p.Will; w != nil {
		if v5 {
			e.properties(&w.Properties, kindWill)
		}
		e.str(w.Topic, "will topic")
		e.bin(w.Payload, "will payload")
	}
	if hasUser {
		e.str(p.Username, "user name")
	}
	if hasPass {
		e.bin(p.Password, "password")
	}
}

func (e *encoder) connack(p *Connack, v5 bool) {
	if e.check && p.SessionPresent && p.ReasonCode != Success {
		e.fail(ProtocolError, "session present with a refusal")
	}
	if p.SessionPresent {
		e.u8(1)
	} else {
		e.u8(0)
	}
	if !v5 {
		e.u8(ConnackCode311(p.ReasonCode))
		return
	}
	e.reasonCode(CONNACK, p.ReasonCode)
	e.properties(&p.Properties, kindBit(CONNACK))
}

func (e *encoder) publish(p *Publish, v5 bool) byte {
	if e.check {
		switch {
		case p.QoS > 2:
			e.fail(MalformedPacket, "QoS above 2")
		case v5 && p.Dup && p.QoS == 0:
			e.fail(MalformedPacket, "DUP set on a QoS 0 message")
		case p.Topic == "" && (!v5 || p.Properties.TopicAlias == nil):
			e.fail(ProtocolError, "empty topic name without a topic alias")
		}
	}
	e.str(p.Topic, "topic name")
	if p.QoS > 0 {
		e.packetID(p.PacketID)
	}
	if v5 {
		e.properties(&p.Properties, kindBit(PUBLISH))
	}
	e.raw(p.Payload)
	h := byte(PUBLISH)<<4 | (p.QoS&3)<<1
	if p.Dup {
		h |= 0x08
	}
	if p.Retain {
		h |= 0x01
	}
	return h
}

// ack writes PUBACK, PUBREC, PUBREL or PUBCOMP, using the 5.0 short forms
// (no reason code when Success without properties, no property length
// when there are no properties) because every receiver must accept them
// and they are what the common case costs on the wire.
func (e *encoder) ack(t Type, id uint16, rc ReasonCode, props *Properties, v5 bool) {
	e.packetID(id)
	if !v5 {
		return
	}
	plen := propertiesLen(props, kindBit(t))
	if rc == Success && plen == 0 {
		return
	}
	e.reasonCode(t, rc)
	if plen > 0 {
		e.properties(props, kindBit(t))
	}
}

// optionalReason writes a 5.0 DISCONNECT or AUTH body: empty for Success
// without properties, else the reason code and properties if any.
func (e *encoder) optionalReason(t Type, rc ReasonCode, props *Properties) {
	plen := propertiesLen(props, kindBit(t))
	if rc == Success && plen == 0 {
		return
	}
	e.reasonCode(t, rc)
	if plen > 0 {
		e.properties(props, kindBit(t))
	}
}

func (e *encoder) subscribe(p *Subscribe, v5 bool) {
	if e.check && len(p.Subscriptions) == 0 {
		e.fail(ProtocolError, "no topic filters")
	}
	e.packetID(p.PacketID)
	if v5 {
		e.properties(&p.Properties, kindBit(SUBSCRIBE))
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if e.check && (s.QoS > 2 || (v5 && s.RetainHandling > 2)) {
			e.fail(ProtocolError, "subscription QoS or retain handling above 2")
		}
		e.str(s.Filter, "topic filter")
		opts := s.QoS & 3
		if v5 {
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			opts |= (s.RetainHandling & 3) << 4
		}
		e.u8(opts)
	}
}

func (e *encoder) suback(p *Suback, v5 bool) {
	if e.check && len(p.ReasonCodes) == 0 {
		e.fail(ProtocolError, "no reason codes")
	}
	e.packetID(p.PacketID)
	if v5 {
		e.properties(&p.Properties, kindBit(SUBACK))
		for _, rc := range p.ReasonCodes {
			e.reasonCode(SUBACK, rc)
		}
		return
	}
	for _, rc := range p.ReasonCodes {
		switch {
		case rc <= GrantedQoS2:
			e.u8(byte(rc))
		case rc.IsError():
			e.u8(0x80) // 3.1.1 has a single failure code
		default:
			if e.check {
				e.fail(ProtocolError, "reason code "+rc.String()+" has no 3.1.1 SUBACK equivalent")
			}
			e.u8(0x80)
		}
	}
}

func (e *encoder) unsubscribe(p *Unsubscribe, v5 bool) {
	if e.check && len(p.Filters) == 0 {
		e.fail(ProtocolError, "no topic filters")
	}
	e.packetID(p.PacketID)
	if v5 {
		e.properties(&p.Properties, kindBit(UNSUBSCRIBE))
	}
	for _, f := range p.Filters {
		e.str(f, "topic filter")
	}
}

func (e *encoder) unsuback(p *Unsuback, v5 bool) {
	e.packetID(p.PacketID)
	if !v5 {
		return
	}
	if e.check && len(p.ReasonCodes) == 0 {
		e.fail(ProtocolError, "no reason codes")
	}
	e.properties(&p.Properties, kindBit(UNSUBACK))
	for _, rc := range p.ReasonCodes {
		e.reasonCode(UNSUBACK, rc)
	}
}
