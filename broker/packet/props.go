package packet

import "strconv"

// Property identifiers (MQTT 5.0 section 2.2.2.2).
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUser                 = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
)

// A property set belongs to a packet type or to a CONNECT's will. kindBit
// gives each packet type its own bit; bit 0 (packet type 0 is reserved)
// stands for the will properties.
const kindWill uint32 = 1

func kindBit(t Type) uint32 { return 1 << t }

func kindName(kind uint32) string {
	if kind == kindWill {
		return "will properties"
	}
	for t := CONNECT; t <= AUTH; t++ {
		if kindBit(t) == kind {
			return t.String()
		}
	}
	return "?"
}

// propAllowed lists, per identifier, the packets that may carry it. An
// identifier not allowed in a packet makes it malformed (section 2.2.2.2);
// unassigned identifiers are allowed nowhere.
var propAllowed = func() (a [0x2B]uint32) {
	k := func(ts ...Type) (m uint32) {
		for _, t := range ts {
			m |= kindBit(t)
		}
		return m
	}
	a[propPayloadFormat] = k(PUBLISH) | kindWill
	a[propMessageExpiry] = k(PUBLISH) | kindWill
	a[propContentType] = k(PUBLISH) | kindWill
	a[propResponseTopic] = k(PUBLISH) | kindWill
	a[propCorrelationData] = k(PUBLISH) | kindWill
	a[propSubscriptionID] = k(PUBLISH, SUBSCRIBE)
	a[propSessionExpiry] = k(CONNECT, CONNACK, DISCONNECT)
	a[propAssignedClientID] = k(CONNACK)
	a[propServerKeepAlive] = k(CONNACK)
	a[propAuthMethod] = k(CONNECT, CONNACK, AUTH)
	a[propAuthData] = k(CONNECT, CONNACK, AUTH)
	a[propRequestProblemInfo] = k(CONNECT)
	a[propWillDelay] = kindWill
	a[propRequestResponseInfo] = k(CONNECT)
	a[propResponseInfo] = k(CONNACK)
	a[propServerReference] = k(CONNACK, DISCONNECT)
	a[propReasonString] = k(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)
	a[propReceiveMaximum] = k(CONNECT, CONNACK)
	a[propTopicAliasMaximum] = k(CONNECT, CONNACK)
	a[propTopicAlias] = k(PUBLISH)
	a[propMaximumQoS] = k(CONNACK)
	a[propRetainAvailable] = k(CONNACK)
	a[propUser] = k(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
		SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH) | kindWill
	a[propMaximumPacketSize] = k(CONNECT, CONNACK)
	a[propWildcardSubAvailable] = k(CONNACK)
	a[propSubIDAvailable] = k(CONNACK)
	a[propSharedSubAvailable] = k(CONNACK)
	return a
}()

var propNames = map[uint32]string{
	propPayloadFormat: "payload format indicator", propMessageExpiry: "message expiry interval",
	propContentType: "content type", propResponseTopic: "response topic", propCorrelationData: "correlation data",
	propSubscriptionID: "subscription identifier", propSessionExpiry: "session expiry interval",
	propAssignedClientID: "assigned client identifier", propServerKeepAlive: "server keep alive",
	propAuthMethod: "authentication method", propAuthData: "authentication data",
	propRequestProblemInfo: "request problem information", propWillDelay: "will delay interval",
	propRequestResponseInfo: "request response information", propResponseInfo: "response information",
	propServerReference: "server reference", propReasonString: "reason string",
	propReceiveMaximum: "receive maximum", propTopicAliasMaximum: "topic alias maximum",
	propTopicAlias: "topic alias", propMaximumQoS: "maximum QoS", propRetainAvailable: "retain available",
	propUser: "user property", propMaximumPacketSize: "maximum packet size",
	propWildcardSubAvailable: "wildcard subscription available",
	propSubIDAvailable:       "subscription identifier available", propSharedSubAvailable: "shared subscription available",
}

func propName(id uint32) string {
	if s, ok := propNames[id]; ok {
		return s
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

// properties decodes a property length and the properties it covers into
// p, enforcing which identifiers kind may carry, that single-valued
// properties appear once, and the value ranges the specification makes
// protocol errors.
func (d *decoder) properties(p *Properties, kind uint32) {
	n := d.vbi("property length")
	if d.err != nil {
		return
	}
	if uint64(n) > uint64(d.left()) {
		d.fail(MalformedPacket, "property length exceeds the packet")
		return
	}
	full := d.buf
	d.buf = full[:d.off+int(n)]
	d.propertyList(p, kind)
	d.buf = full
	if d.err != nil {
		d.off = len(full)
	}
}

func (d *decoder) propertyList(p *Properties, kind uint32) {
	var seen uint64
	hasAuthData := false
	for d.err == nil && d.left() > 0 {
		id := d.vbi("property identifier")
		if d.err != nil {
			return
		}
		if id >= uint32(len(propAllowed)) || propAllowed[id]&kind == 0 {
			d.fail(MalformedPacket, propName(id)+" is not valid in "+kindName(kind))
			return
		}
		repeatable := id == propUser || (id == propSubscriptionID && kind == kindBit(PUBLISH))
		if !repeatable {
			if seen&(1<<id) != 0 {
				d.fail(ProtocolError, propName(id)+" included more than once")
				return
			}
			seen |= 1 << id
		}
		what := propName(id)
		switch id {
		case propPayloadFormat:
			p.PayloadFormat = d.flagProp(what)
		case propMessageExpiry:
			p.MessageExpiry = ptr(d.u32(what))
		case propContentType:
			p.ContentType = d.str(what)
		case propResponseTopic:
			p.ResponseTopic = d.str(what)
		case propCorrelationData:
			p.CorrelationData = d.binary(what)
		case propSubscriptionID:
			v := d.vbi(what)
			if d.err == nil && v == 0 {
				d.fail(ProtocolError, "subscription identifier 0")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case propSessionExpiry:
			p.SessionExpiry = ptr(d.u32(what))
		case propAssignedClientID:
			p.AssignedClientID = d.str(what)
		case propServerKeepAlive:
			p.ServerKeepAlive = ptr(d.u16(what))
		case propAuthMethod:
			p.AuthMethod = d.str(what)
		case propAuthData:
			p.AuthData = d.binary(what)
			hasAuthData = true
		case propRequestProblemInfo:
			p.RequestProblemInfo = d.flagProp(what)
		case propWillDelay:
			p.WillDelay = ptr(d.u32(what))
		case propRequestResponseInfo:
			p.RequestResponseInfo = d.flagProp(what)
		case propResponseInfo:
			p.ResponseInfo = d.str(what)
		case propServerReference:
			p.ServerReference = d.str(what)
		case propReasonString:
			p.ReasonString = d.str(what)
		case propReceiveMaximum:
			p.ReceiveMaximum = d.nonZero16(what)
		case propTopicAliasMaximum:
			p.TopicAliasMaximum = ptr(d.u16(what))
		case propTopicAlias:
			p.TopicAlias = d.nonZero16(what)
		case propMaximumQoS:
			p.MaximumQoS = d.flagProp(what)
		case propRetainAvailable:
			p.RetainAvailable = d.flagProp(what)
		case propUser:
			k := d.str(what + " key")
			v := d.str(what + " value")
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		case propMaximumPacketSize:
			v := d.u32(what)
			if d.err == nil && v == 0 {
				d.fail(ProtocolError, "maximum packet size 0")
			}
			p.MaximumPacketSize = ptr(v)
		case propWildcardSubAvailable:
			p.WildcardSubAvailable = d.flagProp(what)
		case propSubIDAvailable:
			p.SubIDAvailable = d.flagProp(what)
		case propSharedSubAvailable:
			p.SharedSubAvailable = d.flagProp(what)
		}
	}
	// Authentication data without a method is a protocol error (3.1.2.11.10).
	// An empty method counts as none because Encode omits empty strings.
	if d.err == nil && hasAuthData && p.AuthMethod == "" {
		d.fail(ProtocolError, "authentication data without authentication method")
	}
}

// flagProp reads a byte property whose only legal values are 0 and 1.
func (d *decoder) flagProp(what string) *byte {
	v := d.u8(what)
	if d.err == nil && v > 1 {
		d.fail(ProtocolError, what+" must be 0 or 1")
	}
	return ptr(v)
}

// nonZero16 reads a two-byte property for which 0 is a protocol error.
func (d *decoder) nonZero16(what string) *uint16 {
	v := d.u16(what)
	if d.err == nil && v == 0 {
		d.fail(ProtocolError, what+" 0")
	}
	return ptr(v)
}

func ptr[T any](v T) *T { return &v }

// propertyList writes every present property of p in identifier order.
// In checking mode it rejects properties kind may not carry and values the
// decoder would reject, so that Encode never produces a packet ReadPacket
// refuses.
func (e *encoder) propertyList(p *Properties, kind uint32) {
	if p.PayloadFormat != nil {
		e.propID(propPayloadFormat, kind)
		e.flag(*p.PayloadFormat, propPayloadFormat)
	}
	if p.MessageExpiry != nil {
		e.propID(propMessageExpiry, kind)
		e.u32(*p.MessageExpiry)
	}
	if p.ContentType != "" {
		e.propID(propContentType, kind)
		e.str(p.ContentType, "content type")
	}
	if p.ResponseTopic != "" {
		e.propID(propResponseTopic, kind)
		e.str(p.ResponseTopic, "response topic")
	}
	if len(p.CorrelationData) > 0 {
		e.propID(propCorrelationData, kind)
		e.bin(p.CorrelationData, "correlation data")
	}
	if e.check && len(p.SubscriptionIDs) > 1 && kind != kindBit(PUBLISH) {
		e.fail(ProtocolError, "more than one subscription identifier")
	}
	for _, id := range p.SubscriptionIDs {
		e.propID(propSubscriptionID, kind)
		if e.check && (id == 0 || id > MaxRemainingLength) {
			e.fail(ProtocolError, "subscription identifier out of range 1-268435455")
		}
		e.vbi(id)
	}
	if p.SessionExpiry != nil {
		e.propID(propSessionExpiry, kind)
		e.u32(*p.SessionExpiry)
	}
	if p.AssignedClientID != "" {
		e.propID(propAssignedClientID, kind)
		e.str(p.AssignedClientID, "assigned client identifier")
	}
	if p.ServerKeepAlive != nil {
		e.propID(propServerKeepAlive, kind)
		e.u16(*p.ServerKeepAlive)
	}
	if p.AuthMethod != "" {
		e.propID(propAuthMethod, kind)
		e.str(p.AuthMethod, "authentication method")
	}
	if len(p.AuthData) > 0 {
		e.propID(propAuthData, kind)
		if e.check && p.AuthMethod == "" {
			e.fail(ProtocolError, "authentication data without authentication method")
		}
		e.bin(p.AuthData, "authentication data")
	}
	if p.RequestProblemInfo != nil {
		e.propID(propRequestProblemInfo, kind)
		e.flag(*p.RequestProblemInfo, propRequestProblemInfo)
	}
	if p.WillDelay != nil {
		e.propID(propWillDelay, kind)
		e.u32(*p.WillDelay)
	}
	if p.RequestResponseInfo != nil {
		e.propID(propRequestResponseInfo, kind)
		e.flag(*p.RequestResponseInfo, propRequestResponseInfo)
	}
	if p.ResponseInfo != "" {
		e.propID(propResponseInfo, kind)
		e.str(p.ResponseInfo, "response information")
	}
	if p.ServerReference != "" {
		e.propID(propServerReference, kind)
		e.str(p.ServerReference, "server reference")
	}
	if p.ReasonString != "" {
		e.propID(propReasonString, kind)
		e.str(p.ReasonString, "reason string")
	}
	if p.ReceiveMaximum != nil {
		e.propID(propReceiveMaximum, kind)
		e.nonZero16(*p.ReceiveMaximum, propReceiveMaximum)
	}
	if p.TopicAliasMaximum != nil {
		e.propID(propTopicAliasMaximum, kind)
		e.u16(*p.TopicAliasMaximum)
	}
	if p.TopicAlias != nil {
		e.propID(propTopicAlias, kind)
		e.nonZero16(*p.TopicAlias, propTopicAlias)
	}
	if p.MaximumQoS != nil {
		e.propID(propMaximumQoS, kind)
		e.flag(*p.MaximumQoS, propMaximumQoS)
	}
	if p.RetainAvailable != nil {
		e.propID(propRetainAvailable, kind)
		e.flag(*p.RetainAvailable, propRetainAvailable)
	}
	for _, u := range p.User {
		e.propID(propUser, kind)
		e.str(u.Key, "user property key")
		e.str(u.Value, "user property value")
	}
	if p.MaximumPacketSize != nil {
		e.propID(propMaximumPacketSize, kind)
		if e.check && *p.MaximumPacketSize == 0 {
			e.fail(ProtocolError, "maximum packet size 0")
		}
		e.u32(*p.MaximumPacketSize)
	}
	if p.WildcardSubAvailable != nil {
		e.propID(propWildcardSubAvailable, kind)
		e.flag(*p.WildcardSubAvailable, propWildcardSubAvailable)
	}
	if p.SubIDAvailable != nil {
		e.propID(propSubIDAvailable, kind)
		e.flag(*p.SubIDAvailable, propSubIDAvailable)
	}
	if p.SharedSubAvailable != nil {
		e.propID(propSharedSubAvailable, kind)
		e.flag(*p.SharedSubAvailable, propSharedSubAvailable)
	}
}

func (e *encoder) propID(id uint32, kind uint32) {
	if e.check && propAllowed[id]&kind == 0 {
		e.fail(MalformedPacket, propName(id)+" is not valid in "+kindName(kind))
	}
	e.u8(byte(id)) // every assigned identifier fits in one byte
}

func (e *encoder) flag(v byte, id uint32) {
	if e.check && v > 1 {
		e.fail(ProtocolError, propName(id)+" must be 0 or 1")
	}
	e.u8(v)
}

func (e *encoder) nonZero16(v uint16, id uint32) {
	if e.check && v == 0 {
		e.fail(ProtocolError, propName(id)+" 0")
	}
	e.u16(v)
}

// propertiesLen is the encoded size of p's properties without the length
// prefix, used to choose the short forms of acknowledgements.
func propertiesLen(p *Properties, kind uint32) int {
	c := encoder{count: true}
	c.propertyList(p, kind)
	return c.n
}

// properties writes the property length and the properties.
func (e *encoder) properties(p *Properties, kind uint32) {
	c := encoder{count: true, check: e.check}
	c.propertyList(p, kind)
	if c.err != nil {
		e.setErr(c.err)
		return
	}
	if c.n > MaxRemainingLength {
		e.fail(PacketTooLarge, "properties too large")
		return
	}
	e.vbi(uint32(c.n))
	if e.count {
		e.n += c.n
	} else {
		e.propertyList(p, kind)
	}
}

// Reason codes each packet may carry (MQTT 5.0 sections 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1).
var reasonAllowed = func() (a [16][256]bool) {
	set := func(t Type, codes ...ReasonCode) {
		for _, c := range codes {
			a[t][c] = true
		}
	}
	set(CONNACK, Success, UnspecifiedError, MalformedPacket, ProtocolError, ImplementationSpecific,
		UnsupportedProtocolVersion, ClientIDNotValid, BadUsernameOrPassword, NotAuthorized,
		ServerUnavailable, ServerBusy, Banned, BadAuthenticationMethod, TopicNameInvalid,
		PacketTooLarge, QuotaExceeded, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
		UseAnotherServer, ServerMoved, ConnectionRateExceeded)
	pub := []ReasonCode{Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecific,
		NotAuthorized, TopicNameInvalid, PacketIDInUse, QuotaExceeded, PayloadFormatInvalid}
	set(PUBACK, pub...)
	set(PUBREC, pub...)
	set(PUBREL, Success, PacketIDNotFound)
	set(PUBCOMP, Success, PacketIDNotFound)
	set(SUBACK, GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecific,
		NotAuthorized, TopicFilterInvalid, PacketIDInUse, QuotaExceeded, SharedSubNotSupported,
		SubIDNotSupported, WildcardSubNotSupported)
	set(UNSUBACK, Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecific,
		NotAuthorized, TopicFilterInvalid, PacketIDInUse)
	set(DISCONNECT, NormalDisconnection, DisconnectWithWill, UnspecifiedError, MalformedPacket,
		ProtocolError, ImplementationSpecific, NotAuthorized, ServerBusy, ServerShuttingDown,
		KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid, TopicNameInvalid,
		ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh,
		QuotaExceeded, AdministrativeAction, PayloadFormatInvalid, RetainNotSupported,
		QoSNotSupported, UseAnotherServer, ServerMoved, SharedSubNotSupported,
		ConnectionRateExceeded, MaximumConnectTime, SubIDNotSupported, WildcardSubNotSupported)
	set(AUTH, Success, ContinueAuthentication, ReAuthenticate)
	return a
}()

func validReason(t Type, rc ReasonCode) bool { return t < 16 && reasonAllowed[t][rc] }
