package packet

import (
	"bufio"
	"errors"
	"io"
	"unicode/utf8"
	"unsafe"
)

// newError builds an *Error; it exists so that every failure site names
// its reason code explicitly.
func newError(code ReasonCode, msg string) *Error { return &Error{Code: code, Msg: msg} }

func readPacket(br *bufio.Reader, version byte, maxSize uint32) (Packet, error) {
	switch version {
	case 0, Version31, Version311, Version5:
	default:
		return nil, newError(UnsupportedProtocolVersion, "ReadPacket: unknown protocol level")
	}
	b0, err := br.ReadByte()
	if err != nil {
		return nil, err // io.EOF here is a clean close between packets
	}
	t := Type(b0 >> 4)
	flags := b0 & 0x0F
	if err := checkFixedHeader(t, flags, version); err != nil {
		return nil, err
	}
	rl, n, err := readRemainingLength(br)
	if err != nil {
		return nil, err
	}
	limit := uint64(maxSize)
	if limit == 0 {
		limit = MaxRemainingLength + 5
	}
	if uint64(1+n)+uint64(rl) > limit {
		return nil, newError(PacketTooLarge, t.String()+": packet exceeds maximum packet size")
	}
	body, err := readBody(br, int(rl))
	if err != nil {
		return nil, err
	}
	d := decoder{buf: body}
	p := d.decode(t, flags, version)
	if d.err != nil {
		return nil, &Error{Code: d.err.Code, Msg: t.String() + ": " + d.err.Msg}
	}
	return p, nil
}

// bodyChunk is the most readBody allocates before the peer has shown that
// it really sends the bytes it announced.
const bodyChunk = 64 << 10

// readBody reads exactly n bytes. Bodies up to bodyChunk get one exact
// allocation. Larger ones grow by doubling (never past n) as data arrives,
// so a peer that announces a huge remaining length and then stalls or
// closes costs at most about twice what it actually sent, not n.
func readBody(br *bufio.Reader, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, min(n, bodyChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), n))
			copy(nb, buf)
			buf = nb
		}
		k, err := io.ReadFull(br, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the peer vanished inside a packet
			}
			return nil, err
		}
	}
	return buf, nil
}

// checkFixedHeader validates the first byte before anything else is read,
// so that garbage is rejected without reading its claimed length.
func checkFixedHeader(t Type, flags, version byte) error {
	if t == 0 {
		return newError(MalformedPacket, "reserved packet type 0")
	}
	if version == 0 && t != CONNECT {
		return newError(ProtocolError, "first packet is "+t.String()+", not CONNECT")
	}
	if t == AUTH && version != Version5 {
		return newError(MalformedPacket, "packet type 15 is reserved before MQTT 5.0")
	}
	switch t {
	case PUBLISH:
		qos := (flags >> 1) & 3
		if qos == 3 {
			return newError(MalformedPacket, "PUBLISH: QoS 3")
		}
		if version == Version5 && qos == 0 && flags&0x08 != 0 {
			return newError(MalformedPacket, "PUBLISH: DUP set on a QoS 0 message")
		}
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0x02 {
			return newError(MalformedPacket, t.String()+": fixed header flags must be 0010")
		}
	default:
		if flags != 0 {
			return newError(MalformedPacket, t.String()+": fixed header flags must be 0000")
		}
	}
	return nil
}

// readRemainingLength reads the variable byte integer of the fixed header.
// It returns the value and how many bytes it took. Encodings longer than
// four bytes or longer than necessary are malformed [MQTT-1.5.5-1].
func readRemainingLength(br *bufio.Reader) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		v |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, newError(MalformedPacket, "remaining length not minimally encoded")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, newError(MalformedPacket, "remaining length longer than four bytes")
}

// decoder walks one packet body. Errors are sticky: after the first one
// every read returns zero values and the cursor sits at the end, so the
// per-packet code can read a run of fields and check once.
type decoder struct {
	buf []byte
	off int
	err *Error
}

func (d *decoder) fail(code ReasonCode, msg string) {
	if d.err == nil {
		d.err = newError(code, msg)
	}
	d.off = len(d.buf)
}

func (d *decoder) left() int { return len(d.buf) - d.off }

func (d *decoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if d.left() < n {
		d.fail(MalformedPacket, what+": packet too short")
		return false
	}
	return true
}

func (d *decoder) u8(what string) byte {
	if !d.need(1, what) {
		return 0
	}
	c := d.buf[d.off]
	d.off++
	return c
}

func (d *decoder) u16(what string) uint16 {
	if !d.need(2, what) {
		return 0
	}
	v := uint16(d.buf[d.off])<<8 | uint16(d.buf[d.off+1])
	d.off += 2
	return v
}

func (d *decoder) u32(what string) uint32 {
	if !d.need(4, what) {
		return 0
	}
	b := d.buf[d.off:]
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	d.off += 4
	return v
}

// vbi reads a variable byte integer with the same rules as the remaining
// length.
func (d *decoder) vbi(what string) uint32 {
	var v uint32
	for i := 0; i < 4; i++ {
		c := d.u8(what)
		if d.err != nil {
			return 0
		}
		v |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				d.fail(MalformedPacket, what+": variable byte integer not minimally encoded")
				return 0
			}
			return v
		}
	}
	d.fail(MalformedPacket, what+": variable byte integer longer than four bytes")
	return 0
}

// binary reads two-byte-length-prefixed binary data. The result aliases
// the packet buffer (capacity clipped so appends cannot overwrite what
// follows); an empty value is returned as nil so that decoded packets
// compare equal to hand-built ones.
func (d *decoder) binary(what string) []byte {
	n := int(d.u16(what))
	if !d.need(n, what) || n == 0 {
		return nil
	}
	b := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}

// strBytes reads a UTF-8 encoded string and validates it: invalid UTF-8
// (including surrogates) and U+0000 make the packet malformed
// [MQTT-1.5.4-1], [MQTT-1.5.4-2].
func (d *decoder) strBytes(what string) []byte {
	b := d.binary(what)
	if d.err == nil && !validString(b) {
		d.fail(MalformedPacket, what+": not a valid UTF-8 string")
		return nil
	}
	return b
}

func (d *decoder) str(what string) string { return string(d.strBytes(what)) }

// validString reports whether b is valid UTF-8 without U+0000. The
// ASCII loop keeps the common case cheap.
func validString[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.ValidString(string(b[i:]))
		}
	}
	return true
}

// rest returns the remaining bytes (nil if none), aliasing the buffer.
func (d *decoder) rest() []byte {
	if d.err != nil || d.left() == 0 {
		return nil
	}
	b := d.buf[d.off:]
	d.off = len(d.buf)
	return b
}

func (d *decoder) end() {
	if d.err == nil && d.left() != 0 {
		d.fail(MalformedPacket, "unexpected bytes after the end of the packet")
	}
}

func (d *decoder) packetID() uint16 {
	id := d.u16("packet identifier")
	if d.err == nil && id == 0 {
		d.fail(ProtocolError, "packet identifier 0")
	}
	return id
}

func (d *decoder) reasonCode(t Type) ReasonCode {
	rc := ReasonCode(d.u8("reason code"))
	if d.err == nil && !validReason(t, rc) {
		d.fail(ProtocolError, "reason code "+rc.String()+" is not valid in "+t.String())
	}
	return rc
}

func (d *decoder) decode(t Type, flags, version byte) Packet {
	v5 := version == Version5
	switch t {
	case CONNECT:
		return d.connect()
	case CONNACK:
		return d.connack(v5)
	case PUBLISH:
		return d.publish(flags, v5)
	case PUBACK:
		p := &Puback{}
		p.PacketID, p.ReasonCode = d.ack(t, v5, &p.Properties)
		return p
	case PUBREC:
		p := &Pubrec{}
		p.PacketID, p.ReasonCode = d.ack(t, v5, &p.Properties)
		return p
	case PUBREL:
		p := &Pubrel{}
		p.PacketID, p.ReasonCode = d.ack(t, v5, &p.Properties)
		return p
	case PUBCOMP:
		p := &Pubcomp{}
		p.PacketID, p.ReasonCode = d.ack(t, v5, &p.Properties)
		return p
	case SUBSCRIBE:
		return d.subscribe(v5)
	case SUBACK:
		return d.suback(v5)
	case UNSUBSCRIBE:
		return d.unsubscribe(v5)
	case UNSUBACK:
		return d.unsuback(v5)
	case PINGREQ:
		d.end()
		return &Pingreq{}
	case PINGRESP:
		d.end()
		return &Pingresp{}
	case DISCONNECT:
		p := &Disconnect{}
		if v5 {
			p.ReasonCode = d.optionalReason(t, &p.Properties)
		}
		d.end()
		return p
	case AUTH: // checkFixedHeader admits AUTH only for 5.0
		p := &Auth{}
		p.ReasonCode = d.optionalReason(t, &p.Properties)
		d.end()
		return p
	}
	d.fail(MalformedPacket, "unknown packet type")
	return nil
}

func (d *decoder) connect() Packet {
	name := d.str("protocol name")
	level := d.u8("protocol level")
	if d.err != nil {
		return nil
	}
	switch {
	case name == "MQTT" && (level == Version311 || level == Version5):
	case name == "MQIsdp" && level == Version31:
	default:
		d.fail(UnsupportedProtocolVersion, "unsupported protocol name or level")
		return nil
	}
	v5 := level == Version5
	flags := d.u8("connect flags")
	p := &Connect{ProtocolName: name, ProtocolVersion: level}
	p.KeepAlive = d.u16("keep alive")
	if d.err != nil {
		return nil
	}
	willFlag := flags&0x04 != 0
	willQoS := flags >> 3 & 3
	willRetain := flags&0x20 != 0
	p.HasPassword = flags&0x40 != 0
	p.HasUsername = flags&0x80 != 0
	p.CleanStart = flags&0x02 != 0
	switch {
	case flags&0x01 != 0:
		d.fail(MalformedPacket, "reserved connect flag is set") // [MQTT-3.1.2-3]
	case willQoS == 3:
		d.fail(MalformedPacket, "will QoS 3")
	case !willFlag && (willQoS != 0 || willRetain):
		d.fail(MalformedPacket, "will QoS or retain set without the will flag")
	case !v5 && p.HasPassword && !p.HasUsername:
		d.fail(ProtocolError, "password flag without user name flag") // [MQTT-3.1.2-22]
	}
	if v5 {
		d.properties(&p.Properties, kindBit(CONNECT))
	}
	p.ClientID = d.str("client identifier")
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v5 {
			d.properties(&w.Properties, kindWill)
		}
		w.Topic = d.str("will topic")
		w.Payload = d.binary("will payload")
		p.Will = w
	}
	if p.HasUsername {
		p.Username = d.str("user name")
	}
	if p.HasPassword {
		p.Password = d.binary("password")
	}
	d.end()
	return p
}

func (d *decoder) connack(v5 bool) Packet {
	flags := d.u8("acknowledge flags")
	code := d.u8("reason code")
	if d.err != nil {
		return nil
	}
	if flags&0xFE != 0 {
		d.fail(MalformedPacket, "reserved acknowledge flags are set")
		return nil
	}
	p := &Connack{SessionPresent: flags&1 != 0}
	if v5 {
		p.ReasonCode = ReasonCode(code)
		if !validReason(CONNACK, p.ReasonCode) {
			d.fail(ProtocolError, "reason code "+p.ReasonCode.String()+" is not valid in CONNACK")
			return nil
		}
		d.properties(&p.Properties, kindBit(CONNACK))
	} else {
		rc, ok := connackReason311(code)
		if !ok {
			d.fail(MalformedPacket, "reserved 3.1.1 CONNACK return code")
			return nil
		}
		p.ReasonCode = rc
	}
	if d.err == nil && p.SessionPresent && p.ReasonCode != Success {
		d.fail(ProtocolError, "session present with a refusal") // [MQTT-3.2.2-6]
	}
	d.end()
	return p
}

func (d *decoder) publish(flags byte, v5 bool) Packet {
	p := &Publish{Dup: flags&0x08 != 0, QoS: flags >> 1 & 3, Retain: flags&0x01 != 0}
	topic := d.strBytes("topic name")
	if len(topic) > 0 {
		// The topic aliases the body like the payload does: the body is
		// allocated per packet and never written after decoding, so this
		// saves an allocation on the hottest path without sharing memory
		// anyone can mutate.
		p.Topic = unsafe.String(&topic[0], len(topic))
	}
	if p.QoS > 0 {
		p.PacketID = d.packetID()
	}
	if v5 {
		d.properties(&p.Properties, kindBit(PUBLISH))
	}
	if d.err != nil {
		return nil
	}
	if p.Topic == "" {
		if !v5 {
			d.fail(ProtocolError, "empty topic name") // [MQTT-4.7.3-1]
			return nil
		}
		if p.Properties.TopicAlias == nil {
			d.fail(ProtocolError, "empty topic name without a topic alias")
			return nil
		}
	}
	p.Payload = d.rest()
	return p
}

// ack decodes PUBACK, PUBREC, PUBREL and PUBCOMP, which share a layout.
// In 5.0 the reason code and properties may be omitted: a remaining length
// of 2 means Success without properties, 3 a reason code without them.
func (d *decoder) ack(t Type, v5 bool, props *Properties) (uint16, ReasonCode) {
	id := d.packetID()
	var rc ReasonCode
	if v5 && d.left() > 0 {
		rc = d.reasonCode(t)
		if d.left() > 0 {
			d.properties(props, kindBit(t))
		}
	}
	d.end()
	return id, rc
}

// optionalReason decodes the body of a 5.0 DISCONNECT or AUTH, where an
// empty body means Success without properties.
func (d *decoder) optionalReason(t Type, props *Properties) ReasonCode {
	if d.left() == 0 {
		return Success
	}
	rc := d.reasonCode(t)
	if d.left() > 0 {
		d.properties(props, kindBit(t))
	}
	return rc
}

func (d *decoder) subscribe(v5 bool) Packet {
	p := &Subscribe{PacketID: d.packetID()}
	if v5 {
		d.properties(&p.Properties, kindBit(SUBSCRIBE))
	}
	for d.err == nil && d.left() > 0 {
		s := SubscribeOption{Filter: d.str("topic filter")}
		opts := d.u8("subscription options")
		if d.err != nil {
			break
		}
		s.QoS = opts & 3
		if v5 {
			s.NoLocal = opts&0x04 != 0
			s.RetainAsPublished = opts&0x08 != 0
			s.RetainHandling = opts >> 4 & 3
			switch {
			case opts&0xC0 != 0:
				d.fail(MalformedPacket, "reserved subscription option bits are set") // [MQTT-3.8.3-5]
			case s.QoS == 3:
				d.fail(ProtocolError, "subscription QoS 3")
			case s.RetainHandling == 3:
				d.fail(ProtocolError, "retain handling 3")
			}
		} else if opts&0xFC != 0 || s.QoS == 3 {
			d.fail(MalformedPacket, "reserved subscription option bits are set or QoS 3") // [MQTT-3-8.3-4]
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if d.err == nil && len(p.Subscriptions) == 0 {
		d.fail(ProtocolError, "no topic filters") // [MQTT-3.8.3-3]
	}
	return p
}

func (d *decoder) suback(v5 bool) Packet {
	p := &Suback{PacketID: d.packetID()}
	if v5 {
		d.properties(&p.Properties, kindBit(SUBACK))
	}
	p.ReasonCodes = d.reasonList(SUBACK, v5)
	return p
}

func (d *decoder) unsubscribe(v5 bool) Packet {
	p := &Unsubscribe{PacketID: d.packetID()}
	if v5 {
		d.properties(&p.Properties, kindBit(UNSUBSCRIBE))
	}
	for d.err == nil && d.left() > 0 {
		p.Filters = append(p.Filters, d.str("topic filter"))
	}
	if d.err == nil && len(p.Filters) == 0 {
		d.fail(ProtocolError, "no topic filters") // [MQTT-3.10.3-2]
	}
	return p
}

func (d *decoder) unsuback(v5 bool) Packet {
	p := &Unsuback{PacketID: d.packetID()}
	if v5 {
		d.properties(&p.Properties, kindBit(UNSUBACK))
		p.ReasonCodes = d.reasonList(UNSUBACK, true)
	}
	d.end()
	return p
}

// reasonList reads the payload of a SUBACK or 5.0 UNSUBACK: one code per
// filter, at least one. 3.1.1 SUBACK return codes are 0-2 and 0x80, which
// coincide with the 5.0 codes of the same meaning.
func (d *decoder) reasonList(t Type, v5 bool) []ReasonCode {
	if d.err != nil {
		return nil
	}
	if d.left() == 0 {
		d.fail(ProtocolError, "no reason codes")
		return nil
	}
	codes := make([]ReasonCode, d.left())
	for i, c := range d.buf[d.off:] {
		rc := ReasonCode(c)
		if v5 && !validReason(t, rc) {
			d.fail(ProtocolError, "reason code "+rc.String()+" is not valid in "+t.String())
			return nil
		}
		if !v5 && rc > GrantedQoS2 && rc != UnspecifiedError {
			d.fail(MalformedPacket, "reserved 3.1.1 SUBACK return code")
			return nil
		}
		codes[i] = rc
	}
	d.off = len(d.buf)
	return codes
}
