package driver

import (
	"fmt"
	"time"
)

// PacketClass selects one of the four per-session packet stores. Each class is an
// independent FIFO: order is append order, fixed by [PersistedPacket.Seq].
type PacketClass uint8

// The packet classes a session keeps.
const (
	// ClassQoS0 holds QoS 0 messages queued for an offline session (optional for a
	// broker; MQTT allows dropping them).
	ClassQoS0 PacketClass = 1
	// ClassQoS12 holds QoS 1 and 2 messages queued for the session but not yet sent.
	ClassQoS12 PacketClass = 2
	// ClassUnAck holds outbound packets awaiting acknowledgement: a PUBLISH waiting
	// for PUBACK/PUBREC, or the PUBREL that replaced it waiting for PUBCOMP.
	ClassUnAck PacketClass = 3
	// ClassIncoming holds inbound QoS 2 PUBLISH packets received and PUBREC'd but not
	// yet released by the client's PUBREL.
	ClassIncoming PacketClass = 4
)

// PacketClasses lists every class, in a fixed order.
var PacketClasses = []PacketClass{ClassQoS0, ClassQoS12, ClassUnAck, ClassIncoming}

// Valid reports whether c is one of the four classes.
func (c PacketClass) Valid() bool { return c >= ClassQoS0 && c <= ClassIncoming }

// String returns the class name used in logs, errors and test names.
func (c PacketClass) String() string {
	switch c {
	case ClassQoS0:
		return "QoS0"
	case ClassQoS12:
		return "QoS12"
	case ClassUnAck:
		return "UnAck"
	case ClassIncoming:
		return "Incoming"
	}
	return fmt.Sprintf("PacketClass(%d)", uint8(c))
}

// PersistedPacket is one stored MQTT packet: the bytes as they go over the network,
// plus the few fields a broker needs without decoding them.
type PersistedPacket struct {
	// Seq is assigned by the store when the packet is appended. It fixes FIFO order
	// within (session, class), identifies the packet for update and delete (packet
	// ids wrap, so they cannot), is strictly increasing in append order and is never
	// reused, not even after a reopen. It is ignored on append.
	Seq uint64
	// PacketID is the MQTT packet identifier, 0 for QoS 0 or not yet assigned.
	PacketID uint16
	// QoS is the packet's quality of service, 0..2.
	QoS uint8
	// ProtocolVersion is the MQTT protocol level Data is encoded for: 3, 4 (3.1.1) or
	// 5 (5.0).
	ProtocolVersion uint8
	// ExpireAt is the absolute message-expiry deadline; the zero time means never.
	ExpireAt time.Time
	// Data is the complete packet (fixed header included) as it goes over the network.
	Data []byte
}

// Clone returns a deep copy of p.
func (p *PersistedPacket) Clone() *PersistedPacket {
	if p == nil {
		return nil
	}
	c := *p
	if p.Data != nil {
		c.Data = append(make([]byte, 0, len(p.Data)), p.Data...)
	}
	return &c
}

// Expired reports whether p has an expiry deadline at or before now.
func (p *PersistedPacket) Expired(now time.Time) bool {
	return !p.ExpireAt.IsZero() && !now.Before(p.ExpireAt)
}

// PersistedPackets groups packets by class for bulk storage (persistence.Sessions.PacketsStore).
type PersistedPackets struct {
	QoS0     []*PersistedPacket
	QoS12    []*PersistedPacket
	UnAck    []*PersistedPacket
	Incoming []*PersistedPacket
}

// Class returns the packets of class c.
func (pp *PersistedPackets) Class(c PacketClass) []*PersistedPacket {
	switch c {
	case ClassQoS0:
		return pp.QoS0
	case ClassQoS12:
		return pp.QoS12
	case ClassUnAck:
		return pp.UnAck
	case ClassIncoming:
		return pp.Incoming
	}
	return nil
}

// PacketLoader is called for each packet of an iteration, in FIFO order. It receives
// a copy the callee may keep. Returning del=true deletes the packet from the store
// (an acknowledgement or a move elsewhere); returning an error stops the iteration,
// and the deletions asked for by earlier calls (and this one) are still applied.
type PacketLoader func(p *PersistedPacket) (del bool, err error)
