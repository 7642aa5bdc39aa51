package broker

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// wireMsg is one message as it goes to every subscriber that gets the same
// variant of it (QoS, RETAIN flag, subscription identifiers): decoded at most
// once, encoded at most once per protocol version, and then shared read-only by
// those subscribers' connections and by the store. The encodings carry the
// placeholder packet id 1 and no DUP flag; the connection's writer puts each
// subscriber's packet id and DUP flag in as it writes (see outItem), so sending
// one message to many subscribers neither copies nor re-encodes it.
type wireMsg struct {
	qos      byte
	expireAt time.Time

	mu  sync.Mutex
	pub *packet.Publish // PacketID 0, Dup false; nil until decoded from v5
	v5  []byte          // MQTT 5.0 encoding; what the store keeps
	v3  []byte          // MQTT 3.1.1 encoding
}

// newWireMsg wraps pub, which the caller no longer changes.
func newWireMsg(pub *packet.Publish, expireAt time.Time) *wireMsg {
	return &wireMsg{qos: pub.QoS, expireAt: expireAt, pub: pub}
}

// wireFromStored wraps a PUBLISH read from the store; it is decoded only if a
// subscriber needs it in another form than its stored MQTT 5.0 bytes.
func wireFromStored(pp *persistence.PersistedPacket) *wireMsg {
	m := &wireMsg{qos: pp.QoS, expireAt: pp.ExpireAt}
	if pp.ProtocolVersion == packet.Version5 {
		m.v5 = pp.Data
	} else if pub, err := decodePublish(pp); err == nil {
		m.pub = pub
	}
	return m
}

// publish returns the decoded message (shared: callers copy it before changing it).
func (m *wireMsg) publish() (*packet.Publish, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.publishLocked()
}

func (m *wireMsg) publishLocked() (*packet.Publish, error) {
	if m.pub != nil {
		return m.pub, nil
	}
	if m.v5 == nil {
		return nil, fmt.Errorf("%w: stored message unreadable", persistence.ErrBrokenEntry)
	}
	pub, err := decodePublish(&persistence.PersistedPacket{ProtocolVersion: packet.Version5, Data: m.v5})
	if err != nil {
		return nil, err
	}
	pub.PacketID, pub.Dup = 0, false
	m.pub = pub
	return pub, nil
}

// encoded returns the message encoded for protocol version v.
func (m *wireMsg) encoded(v byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	slot := &m.v3
	if v == packet.Version5 {
		slot = &m.v5
	}
	if *slot != nil {
		return *slot, nil
	}
	pub, err := m.publishLocked()
	if err != nil {
		return nil, err
	}
	q := *pub
	if q.QoS > 0 {
		q.PacketID = 1
	}
	b, err := packet.Encode(nil, &q, v)
	if err != nil {
		return nil, err
	}
	*slot = b
	return b, nil
}

// forVersion returns the message encoded for protocol version v, or, for a 3.1.1
// (or 3.1) client when the MQTT 5.0 encoding exists and has no properties, that
// encoding with strip set: the writer leaves out its empty property length,
// which makes it the 3.1.1 encoding, so that the message is not encoded and
// allocated a second time.
func (m *wireMsg) forVersion(v byte) (b []byte, strip bool, err error) {
	if v != packet.Version5 {
		m.mu.Lock()
		v5, v3 := m.v5, m.v3
		m.mu.Unlock()
		if v3 == nil && v5 != nil {
			if _, _, ok := v5Layout(v5, m.qos); ok {
				return v5, true, nil
			}
		}
	}
	b, err = m.encoded(v)
	return b, false, err
}

// v5Layout reads an MQTT 5.0 PUBLISH of QoS qos whose property length is one byte
// of zero (no properties): its remaining length starts at b[1] and ends before
// b[hdr], and b[props] is the property length. ok is false otherwise.
func v5Layout(b []byte, qos byte) (hdr, props int, ok bool) {
	hdr, props, err := publishTopicEnd(b)
	if err != nil {
		return 0, 0, false
	}
	if qos > 0 {
		props += 2
	}
	if props >= len(b) || b[props] != 0 {
		return 0, 0, false
	}
	return hdr, props, true
}

// writeStripped writes the MQTT 5.0 encoding b of a PUBLISH without properties
// as its 3.1.1 encoding (see forVersion), with packet id pid and the DUP flag
// when patch is set.
func writeStripped(bw *bufio.Writer, b []byte, qos byte, patch bool, pid uint16, dup bool) error {
	hdr, props, ok := v5Layout(b, qos)
	if !ok {
		return errBadPublish
	}
	rl := 0
	for i, mul := 1, 1; i < hdr; i, mul = i+1, mul<<7 {
		rl += int(b[i]&0x7F) * mul
	}
	b0 := b[0]
	if patch {
		b0 &^= 0x08
		if dup {
			b0 |= 0x08
		}
	}
	bw.WriteByte(b0)
	for v := rl - 1; ; v >>= 7 { // the remaining length, one byte shorter
		if v < 0x80 {
			bw.WriteByte(byte(v))
			break
		}
		bw.WriteByte(byte(v&0x7F) | 0x80)
	}
	if patch {
		bw.Write(b[hdr : props-2])
		bw.WriteByte(byte(pid >> 8))
		bw.WriteByte(byte(pid))
	} else {
		bw.Write(b[hdr:props])
	}
	_, err := bw.Write(b[props+1:])
	return err
}

// stored returns the record the store keeps for the message in flight (pid) or
// queued (pid 0). It shares the encoding, which nothing changes.
func (m *wireMsg) stored(pid uint16) (*persistence.PersistedPacket, error) {
	data, err := m.encoded(packet.Version5)
	if err != nil {
		return nil, err
	}
	return &persistence.PersistedPacket{PacketID: pid, QoS: m.qos, ProtocolVersion: packet.Version5, ExpireAt: m.expireAt, Data: data}, nil
}

// size is what the message counts against a queue's byte limit.
func (m *wireMsg) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v5 != nil {
		return len(m.v5)
	}
	if m.pub != nil {
		return len(m.pub.Topic) + len(m.pub.Payload) + 16
	}
	return 16
}

// outItem is what a connection's writer writes: packet bytes as they are, a
// shared PUBLISH encoding into which it writes pid and the DUP flag, or a
// PUBLISH it encodes itself (to give it a topic alias, which must be chosen in
// the order the packets go out).
type outItem struct {
	b     []byte
	pub   *packet.Publish
	pid   uint16
	dup   bool
	patch bool  // b is a QoS 1/2 PUBLISH whose packet id and DUP flag are pid and dup
	strip bool  // b is an MQTT 5.0 PUBLISH without properties, written as 3.1.1 (writeStripped)
	qos   byte  // the QoS of b when strip is set
	ack   byte  // non-zero: a successful PUBACK/PUBREC/PUBREL/PUBCOMP with this first byte, for pid
	n     int64 // bytes charged to the outgoing budgets (budget.go), given back once written
}

// errBadPublish reports shared PUBLISH bytes the writer cannot patch, which only
// a bug produces.
var errBadPublish = errors.New("broker: encoded PUBLISH too short")

// publishTopicEnd reads an encoded PUBLISH: its variable header starts at
// b[hdr] (after the remaining length) and its topic name ends before b[end].
func publishTopicEnd(b []byte) (hdr, end int, err error) {
	hdr = 1
	for hdr < len(b) && hdr < 5 && b[hdr]&0x80 != 0 {
		hdr++
	}
	hdr++
	if hdr+2 > len(b) {
		return 0, 0, errBadPublish
	}
	return hdr, hdr + 2 + (int(b[hdr])<<8 | int(b[hdr+1])), nil
}

// publishPIDOffset returns where the packet id sits in an encoded QoS 1/2
// PUBLISH: after the fixed header and the topic name.
func publishPIDOffset(b []byte) (int, error) {
	_, off, err := publishTopicEnd(b)
	if err != nil {
		return 0, err
	}
	if off+2 > len(b) {
		return 0, errBadPublish
	}
	return off, nil
}

// ackPuback is the first byte of a PUBACK, as outItem.ack.
const ackPuback = 0x40

// shortAck returns the first byte of p when p is an acknowledgement that is
// encoded in four bytes (success, no properties) the same way in every version,
// so the writer can write it without an encoded copy.
func shortAck(p packet.Packet) (byte, uint16, bool) {
	switch p := p.(type) {
	case *packet.Puback:
		return ackPuback, p.PacketID, p.ReasonCode == 0 && emptyAckProps(&p.Properties)
	case *packet.Pubrec:
		return 0x50, p.PacketID, p.ReasonCode == 0 && emptyAckProps(&p.Properties)
	case *packet.Pubrel:
		return 0x62, p.PacketID, p.ReasonCode == 0 && emptyAckProps(&p.Properties)
	case *packet.Pubcomp:
		return 0x70, p.PacketID, p.ReasonCode == 0 && emptyAckProps(&p.Properties)
	}
	return 0, 0, false
}

func emptyAckProps(p *packet.Properties) bool { return p.ReasonString == "" && len(p.User) == 0 }

// writePatched writes the shared encoding b with packet id pid and the DUP flag.
func writePatched(bw *bufio.Writer, b []byte, pid uint16, dup bool) error {
	off, err := publishPIDOffset(b)
	if err != nil {
		return err
	}
	b0 := b[0] &^ 0x08
	if dup {
		b0 |= 0x08
	}
	bw.WriteByte(b0)
	bw.Write(b[1:off])
	bw.WriteByte(byte(pid >> 8))
	bw.WriteByte(byte(pid))
	_, err = bw.Write(b[off+2:])
	return err
}

// aliases is the writer's side of server-to-client topic aliases: the topics it
// gave an alias on this connection, up to the client's Topic Alias Maximum and
// at most maxServerAliases. Aliases are handed out first come, first served and
// kept for the connection; once they are all taken, other topics are sent in
// full.
type aliases struct {
	max     uint16
	byTopic map[string]uint16
	scratch []byte
}

// maxServerAliases bounds the topic aliases the broker gives one client,
// whatever Topic Alias Maximum the client allows, so that a client cannot make
// it keep tens of thousands of topics.
const maxServerAliases = 1024

// encode encodes pub (a copy the writer may change) with an alias for its topic.
func (a *aliases) encode(pub *packet.Publish) ([]byte, error) {
	if al, ok := a.byTopic[pub.Topic]; ok {
		pub.Topic = ""
		pub.Properties.TopicAlias = &al
		return a.encodeScratch(pub)
	}
	if len(a.byTopic) >= int(min(a.max, maxServerAliases)) {
		return a.encodeScratch(pub)
	}
	al := uint16(len(a.byTopic) + 1)
	pub.Properties.TopicAlias = &al
	b, err := a.encodeScratch(pub)
	if err == nil {
		if a.byTopic == nil {
			a.byTopic = map[string]uint16{}
		}
		a.byTopic[strings.Clone(pub.Topic)] = al // not the message's memory
	}
	return b, err
}

func (a *aliases) encodeScratch(pub *packet.Publish) ([]byte, error) {
	b, err := packet.Encode(a.scratch[:0], pub, packet.Version5)
	if err == nil {
		a.scratch = b
	}
	return b, err
}
