package packet

import (
	"bufio"
	"strconv"
	"strings"
)

// Protocol levels as carried in the CONNECT variable header. The broker keys
// every version-dependent decision on these values, so they are exported
// rather than repeated as magic numbers.
const (
	// Version31 is MQTT 3.1 (protocol name "MQIsdp"). It is encoded exactly
	// like 3.1.1 apart from the CONNECT protocol name.
	Version31 byte = 3
	// Version311 is MQTT 3.1.1 (protocol name "MQTT").
	Version311 byte = 4
	// Version5 is MQTT 5.0 (protocol name "MQTT").
	Version5 byte = 5
)

// MaxRemainingLength is the largest remaining length a variable byte integer
// can express (four bytes). A packet is therefore at most
// MaxRemainingLength+5 bytes long, which is what ReadPacket uses when
// maxSize is 0.
const MaxRemainingLength = 268435455

// Type is the MQTT control packet type from the high nibble of the first
// byte of the fixed header.
type Type byte

// Control packet types. The upper-case names follow the specification so
// that code reads like the spec tables it implements.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5.0 only; reserved (malformed) in 3.1.1.
)

var typeNames = [...]string{
	CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
	PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
	SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
	PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

// String returns the specification name of the packet type, for logs and
// error messages.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Packet is implemented by the pointer types of every control packet
// (*Connect, *Connack, *Publish, ...). ReadPacket returns those pointers and
// Encode accepts them, so a type switch on *T covers every packet.
type Packet interface {
	Type() Type
}

// ReasonCode is an MQTT 5.0 reason code. The codec also uses it for MQTT
// 3.1.1: CONNACK return codes and SUBACK return codes are translated to and
// from their 5.0 equivalents, so the broker handles one set of codes.
type ReasonCode byte

// MQTT 5.0 reason codes (spec section 2.4). Several names share a value
// because the specification gives the same byte different names per packet.
const (
	Success                    ReasonCode = 0x00
	NormalDisconnection        ReasonCode = 0x00
	GrantedQoS0                ReasonCode = 0x00
	GrantedQoS1                ReasonCode = 0x01
	GrantedQoS2                ReasonCode = 0x02
	DisconnectWithWill         ReasonCode = 0x04
	NoMatchingSubscribers      ReasonCode = 0x10
	NoSubscriptionExisted      ReasonCode = 0x11
	ContinueAuthentication     ReasonCode = 0x18
	ReAuthenticate             ReasonCode = 0x19
	UnspecifiedError           ReasonCode = 0x80
	MalformedPacket            ReasonCode = 0x81
	ProtocolError              ReasonCode = 0x82
	ImplementationSpecific     ReasonCode = 0x83
	UnsupportedProtocolVersion ReasonCode = 0x84
	ClientIDNotValid           ReasonCode = 0x85
	BadUsernameOrPassword      ReasonCode = 0x86
	NotAuthorized              ReasonCode = 0x87
	ServerUnavailable          ReasonCode = 0x88
	ServerBusy                 ReasonCode = 0x89
	Banned                     ReasonCode = 0x8A
	ServerShuttingDown         ReasonCode = 0x8B
	BadAuthenticationMethod    ReasonCode = 0x8C
	KeepAliveTimeout           ReasonCode = 0x8D
	SessionTakenOver           ReasonCode = 0x8E
	TopicFilterInvalid         ReasonCode = 0x8F
	TopicNameInvalid           ReasonCode = 0x90
	PacketIDInUse              ReasonCode = 0x91
	PacketIDNotFound           ReasonCode = 0x92
	ReceiveMaximumExceeded     ReasonCode = 0x93
	TopicAliasInvalid          ReasonCode = 0x94
	PacketTooLarge             ReasonCode = 0x95
	MessageRateTooHigh         ReasonCode = 0x96
	QuotaExceeded              ReasonCode = 0x97
	AdministrativeAction       ReasonCode = 0x98
	PayloadFormatInvalid       ReasonCode = 0x99
	RetainNotSupported         ReasonCode = 0x9A
	QoSNotSupported            ReasonCode = 0x9B
	UseAnotherServer           ReasonCode = 0x9C
	ServerMoved                ReasonCode = 0x9D
	SharedSubNotSupported      ReasonCode = 0x9E
	ConnectionRateExceeded     ReasonCode = 0x9F
	MaximumConnectTime         ReasonCode = 0xA0
	SubIDNotSupported          ReasonCode = 0xA1
	WildcardSubNotSupported    ReasonCode = 0xA2
)

var reasonNames = map[ReasonCode]string{
	Success: "success", GrantedQoS1: "granted QoS 1", GrantedQoS2: "granted QoS 2",
	DisconnectWithWill: "disconnect with will message", NoMatchingSubscribers: "no matching subscribers",
	NoSubscriptionExisted: "no subscription existed", ContinueAuthentication: "continue authentication",
	ReAuthenticate: "re-authenticate", UnspecifiedError: "unspecified error",
	MalformedPacket: "malformed packet", ProtocolError: "protocol error",
	ImplementationSpecific: "implementation specific error", UnsupportedProtocolVersion: "unsupported protocol version",
	ClientIDNotValid: "client identifier not valid", BadUsernameOrPassword: "bad user name or password",
	NotAuthorized: "not authorized", ServerUnavailable: "server unavailable", ServerBusy: "server busy",
	Banned: "banned", ServerShuttingDown: "server shutting down", BadAuthenticationMethod: "bad authentication method",
	KeepAliveTimeout: "keep alive timeout", SessionTakenOver: "session taken over",
	TopicFilterInvalid: "topic filter invalid", TopicNameInvalid: "topic name invalid",
	PacketIDInUse: "packet identifier in use", PacketIDNotFound: "packet identifier not found",
	ReceiveMaximumExceeded: "receive maximum exceeded", TopicAliasInvalid: "topic alias invalid",
	PacketTooLarge: "packet too large", MessageRateTooHigh: "message rate too high",
	QuotaExceeded: "quota exceeded", AdministrativeAction: "administrative action",
	PayloadFormatInvalid: "payload format invalid", RetainNotSupported: "retain not supported",
	QoSNotSupported: "QoS not supported", UseAnotherServer: "use another server", ServerMoved: "server moved",
	SharedSubNotSupported: "shared subscriptions not supported", ConnectionRateExceeded: "connection rate exceeded",
	MaximumConnectTime: "maximum connect time", SubIDNotSupported: "subscription identifiers not supported",
	WildcardSubNotSupported: "wildcard subscriptions not supported",
}

// String returns the specification name of the reason code (the first name
// when several share a value), for logs.
func (rc ReasonCode) String() string {
	if s, ok := reasonNames[rc]; ok {
		return s
	}
	const hex = "0123456789ABCDEF"
	return "ReasonCode(0x" + string([]byte{hex[rc>>4], hex[rc&15]}) + ")"
}

// IsError reports whether the code signals failure: the specification puts
// every failure at 0x80 or above.
func (rc ReasonCode) IsError() bool { return rc >= 0x80 }

// MQTT 3.1.1 CONNACK return codes (spec 3.1.1 section 3.2.2.3). They are
// what ConnackCode311 produces and what a 3.1.1 CONNACK carries on the wire.
const (
	ConnAccepted311                 byte = 0x00
	ConnRefusedBadVersion311        byte = 0x01
	ConnRefusedIDRejected311        byte = 0x02
	ConnRefusedServerUnavailable311 byte = 0x03
	ConnRefusedBadCredentials311    byte = 0x04
	ConnRefusedNotAuthorized311     byte = 0x05
)

// ConnackCode311 maps a 5.0 CONNACK reason code to the 3.1.1 return code
// that means the same thing to a 3.1.1 client, so the broker can decide
// the outcome once in 5.0 terms. Codes without a 3.1.1 counterpart become
// "server unavailable", the most neutral refusal 3.1.1 offers.
func ConnackCode311(rc ReasonCode) byte {
	switch rc {
	case Success:
		return ConnAccepted311
	case UnsupportedProtocolVersion:
		return ConnRefusedBadVersion311
	case ClientIDNotValid:
		return ConnRefusedIDRejected311
	case BadUsernameOrPassword, BadAuthenticationMethod:
		return ConnRefusedBadCredentials311
	case NotAuthorized, Banned:
		return ConnRefusedNotAuthorized311
	default:
		return ConnRefusedServerUnavailable311
	}
}

// connackReason311 is the inverse of ConnackCode311 for the six codes 3.1.1
// defines; ok is false for the reserved values 6-255.
func connackReason311(b byte) (rc ReasonCode, ok bool) {
	switch b {
	case ConnAccepted311:
		return Success, true
	case ConnRefusedBadVersion311:
		return UnsupportedProtocolVersion, true
	case ConnRefusedIDRejected311:
		return ClientIDNotValid, true
	case ConnRefusedServerUnavailable311:
		return ServerUnavailable, true
	case ConnRefusedBadCredentials311:
		return BadUsernameOrPassword, true
	case ConnRefusedNotAuthorized311:
		return NotAuthorized, true
	}
	return 0, false
}

// UserProperty is one MQTT 5.0 user property. User properties are a list,
// not a map: the specification allows repeated keys and requires their
// order to be preserved.
type UserProperty struct {
	Key, Value string
}

// Properties holds every MQTT 5.0 property. Numeric properties whose zero
// value is meaningful are pointers so that "absent" can be told apart from
// "present and zero". String and binary properties are absent when empty:
// the specification gives an empty value no meaning distinct from absence,
// and Encode omits them. For MQTT 3.1.1 connections properties are never
// decoded and are ignored by Encode.
type Properties struct {
	PayloadFormat   *byte   // 0x01 PUBLISH, will: 0 unspecified bytes, 1 UTF-8
	MessageExpiry   *uint32 // 0x02 PUBLISH, will: seconds
	ContentType     string  // 0x03 PUBLISH, will
	ResponseTopic   string  // 0x08 PUBLISH, will
	CorrelationData []byte  // 0x09 PUBLISH, will

	// SubscriptionIDs is property 0x0B. A PUBLISH from the server may carry
	// several (one per matching subscription); SUBSCRIBE carries at most one.
	SubscriptionIDs []uint32

	SessionExpiry        *uint32        // 0x11 CONNECT, CONNACK, DISCONNECT: seconds
	AssignedClientID     string         // 0x12 CONNACK
	ServerKeepAlive      *uint16        // 0x13 CONNACK: seconds
	AuthMethod           string         // 0x15 CONNECT, CONNACK, AUTH
	AuthData             []byte         // 0x16 CONNECT, CONNACK, AUTH
	RequestProblemInfo   *byte          // 0x17 CONNECT: 0 or 1
	WillDelay            *uint32        // 0x18 will: seconds
	RequestResponseInfo  *byte          // 0x19 CONNECT: 0 or 1
	ResponseInfo         string         // 0x1A CONNACK
	ServerReference      string         // 0x1C CONNACK, DISCONNECT
	ReasonString         string         // 0x1F every acknowledgement, DISCONNECT, AUTH
	ReceiveMaximum       *uint16        // 0x21 CONNECT, CONNACK: never 0
	TopicAliasMaximum    *uint16        // 0x22 CONNECT, CONNACK
	TopicAlias           *uint16        // 0x23 PUBLISH: never 0
	MaximumQoS           *byte          // 0x24 CONNACK: 0 or 1
	RetainAvailable      *byte          // 0x25 CONNACK: 0 or 1
	User                 []UserProperty // 0x26 every packet with properties, in wire order
	MaximumPacketSize    *uint32        // 0x27 CONNECT, CONNACK: never 0
	WildcardSubAvailable *byte          // 0x28 CONNACK: 0 or 1
	SubIDAvailable       *byte          // 0x29 CONNACK: 0 or 1
	SharedSubAvailable   *byte          // 0x2A CONNACK: 0 or 1
}

// Will is the will message of a CONNECT. Properties are the 5.0 will
// properties (payload format, message expiry, content type, response topic,
// correlation data, will delay, user properties).
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties
}

// Connect is the CONNECT packet. ProtocolVersion is the level on the wire
// (3, 4 or 5) and decides how the rest is encoded; ProtocolName may be left
// empty when encoding and is then derived from the level. CleanStart is the
// 3.1.1 clean-session flag on 3.1.1 connections. HasUsername/HasPassword
// carry the flags because an empty user name or password is not the same
// as none.
type Connect struct {
	ProtocolName    string
	ProtocolVersion byte
	CleanStart      bool
	KeepAlive       uint16
	ClientID        string
	Username        string
	HasUsername     bool
	Password        []byte
	HasPassword     bool
	Will            *Will
	Properties      Properties
}

// Connack is the CONNACK packet. ReasonCode is always a 5.0 code; on 3.1.1
// connections Encode writes ConnackCode311(ReasonCode) and ReadPacket maps
// the return code back.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is the PUBLISH packet. PacketID is only on the wire for QoS 1
// and 2. A decoded Publish's Topic and Payload share the buffer the packet
// was read into (one allocation for the whole body); use Clone to keep a
// copy independent of it.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string
	PacketID   uint16
	Properties Properties
	Payload    []byte
}

// Puback is the PUBACK packet (QoS 1 acknowledgement).
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrec is the PUBREC packet (QoS 2, part 1).
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrel is the PUBREL packet (QoS 2, part 2).
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubcomp is the PUBCOMP packet (QoS 2, part 3).
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// SubscribeOption is one topic filter of a SUBSCRIBE with its options.
// NoLocal, RetainAsPublished and RetainHandling are 5.0 only: they are
// zero when decoded from 3.1.1 and ignored when encoding for 3.1.1.
type SubscribeOption struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is the SUBSCRIBE packet. Filters are only checked for UTF-8
// validity: an invalid filter is answered per filter in the SUBACK, not by
// closing the connection, so that judgement is the broker's.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []SubscribeOption
}

// Suback is the SUBACK packet, one reason code per requested filter. On
// 3.1.1 connections GrantedQoS0-2 are written as such and every failure
// code as 0x80; decoding 3.1.1 yields GrantedQoS0-2 or UnspecifiedError.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes (one per filter) exist only
// in 5.0; they are nil when decoded from 3.1.1 and ignored when encoding
// for it.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. In 3.1.1 it has no content, so
// ReasonCode and Properties are ignored when encoding for 3.1.1.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Auth is the MQTT 5.0 AUTH packet (enhanced authentication).
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns CONNECT.
func (*Connect) Type() Type { return CONNECT }

// Type returns CONNACK.
func (*Connack) Type() Type { return CONNACK }

// Type returns PUBLISH.
func (*Publish) Type() Type { return PUBLISH }

// Type returns PUBACK.
func (*Puback) Type() Type { return PUBACK }

// Type returns PUBREC.
func (*Pubrec) Type() Type { return PUBREC }

// Type returns PUBREL.
func (*Pubrel) Type() Type { return PUBREL }

// Type returns PUBCOMP.
func (*Pubcomp) Type() Type { return PUBCOMP }

// Type returns SUBSCRIBE.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// Type returns SUBACK.
func (*Suback) Type() Type { return SUBACK }

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Type returns UNSUBACK.
func (*Unsuback) Type() Type { return UNSUBACK }

// Type returns PINGREQ.
func (*Pingreq) Type() Type { return PINGREQ }

// Type returns PINGRESP.
func (*Pingresp) Type() Type { return PINGRESP }

// Type returns DISCONNECT.
func (*Disconnect) Type() Type { return DISCONNECT }

// Type returns AUTH.
func (*Auth) Type() Type { return AUTH }

// Error is a decoding or encoding failure with the reason code the broker
// should send (in a 5.0 CONNACK or DISCONNECT) before closing the
// connection. Errors compare equal under errors.Is when their codes match,
// so errors.Is(err, ErrMalformed) works for every malformed-packet error.
type Error struct {
	Code ReasonCode
	Msg  string
}

// Error implements error.
func (e *Error) Error() string {
	return "mqtt: " + e.Msg + " (" + e.Code.String() + ")"
}

// Is reports whether target is an *Error with the same reason code, which
// is what makes the sentinels below usable with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors for errors.Is. The codec returns its own *Error values
// with a specific Msg; these only carry the code, which is all Is compares.
var (
	// ErrMalformed matches errors for bytes that cannot be parsed as the
	// specification describes (reason code 0x81).
	ErrMalformed = &Error{Code: MalformedPacket, Msg: "malformed packet"}
	// ErrProtocol matches errors for well-formed packets the specification
	// forbids, such as a duplicated property or a SUBSCRIBE without
	// filters (reason code 0x82).
	ErrProtocol = &Error{Code: ProtocolError, Msg: "protocol error"}
	// ErrTooLarge matches errors for packets over the maxSize given to
	// ReadPacket, or too large for the protocol in Encode (reason code 0x95).
	ErrTooLarge = &Error{Code: PacketTooLarge, Msg: "packet too large"}
	// ErrUnsupportedVersion matches errors for a CONNECT whose protocol name
	// and level are not MQTT 3.1, 3.1.1 or 5.0 (reason code 0x84; a 3.1.1
	// server answers with CONNACK return code 1).
	ErrUnsupportedVersion = &Error{Code: UnsupportedProtocolVersion, Msg: "unsupported protocol version"}
)

// ReadPacket reads exactly one control packet from r.
//
// version is the connection's negotiated protocol level (Version31,
// Version311 or Version5). Before the CONNECT has been read pass 0: then
// only a CONNECT is accepted (anything else is a protocol error) and the
// CONNECT is decoded according to its own protocol level, which the caller
// then adopts. maxSize bounds the whole packet including its fixed header;
// 0 means the protocol maximum. A larger packet is rejected with an error
// matching ErrTooLarge right after its fixed header, before its body is
// read or allocated, so a hostile peer cannot make the broker allocate more
// than maxSize.
//
// A clean close before the first byte returns io.EOF; a close inside a
// packet returns io.ErrUnexpectedEOF; other read errors are returned as is.
// Protocol violations are returned as *Error. ReadPacket never panics.
func ReadPacket(r *bufio.Reader, version byte, maxSize uint32) (Packet, error) {
	return readPacket(r, version, maxSize)
}

// Encode appends the encoding of p for protocol level version to dst and
// returns the extended slice. Fields that do not exist in 3.1.1
// (properties, most reason codes) are omitted for Version31/Version311.
// Values that cannot be encoded (a string over 65535 bytes, invalid UTF-8,
// a property not allowed in the packet, a QoS above 2, a packet larger
// than the protocol maximum, ...) return an *Error and leave dst as given.
// For a *Connect, version may be 0: the packet's ProtocolVersion is used.
func Encode(dst []byte, p Packet, version byte) ([]byte, error) {
	return encode(dst, p, version)
}

// Clone returns a deep copy of p that shares no memory with it, so a
// decoded message can outlive the buffer it was read into or be modified
// (for example its Dup flag or properties) per subscriber.
func (p *Publish) Clone() *Publish {
	if p == nil {
		return nil
	}
	c := *p
	c.Topic = strings.Clone(p.Topic)
	c.Payload = cloneBytes(p.Payload)
	c.Properties = p.Properties.Clone()
	return &c
}

// Clone returns a deep copy of the properties: pointer fields point to new
// values and slices are copied, so the copy can be changed independently.
func (p Properties) Clone() Properties {
	c := p
	c.PayloadFormat = clonePtr(p.PayloadFormat)
	c.MessageExpiry = clonePtr(p.MessageExpiry)
	c.CorrelationData = cloneBytes(p.CorrelationData)
	if p.SubscriptionIDs != nil {
		c.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	}
	c.SessionExpiry = clonePtr(p.SessionExpiry)
	c.ServerKeepAlive = clonePtr(p.ServerKeepAlive)
	c.AuthData = cloneBytes(p.AuthData)
	c.RequestProblemInfo = clonePtr(p.RequestProblemInfo)
	c.WillDelay = clonePtr(p.WillDelay)
	c.RequestResponseInfo = clonePtr(p.RequestResponseInfo)
	c.ReceiveMaximum = clonePtr(p.ReceiveMaximum)
	c.TopicAliasMaximum = clonePtr(p.TopicAliasMaximum)
	c.TopicAlias = clonePtr(p.TopicAlias)
	c.MaximumQoS = clonePtr(p.MaximumQoS)
	c.RetainAvailable = clonePtr(p.RetainAvailable)
	if p.User != nil {
		c.User = append([]UserProperty(nil), p.User...)
	}
	c.MaximumPacketSize = clonePtr(p.MaximumPacketSize)
	c.WildcardSubAvailable = clonePtr(p.WildcardSubAvailable)
	c.SubIDAvailable = clonePtr(p.SubIDAvailable)
	c.SharedSubAvailable = clonePtr(p.SharedSubAvailable)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
