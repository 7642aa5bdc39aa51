package mochi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/persistence"
)

// ErrBadPacket reports stored packet bytes this adapter cannot turn back into a
// Mochi message. It wraps persistence.ErrBrokenEntry.
var ErrBadPacket = fmt.Errorf("%w: mochi adapter: undecodable packet", persistence.ErrBrokenEntry)

// toPersisted encodes pk as it goes over the network in MQTT 5.0 (so that every
// property is kept, whatever the client's version; Mochi re-encodes for the client
// when it sends).
func toPersisted(pk packets.Packet) (*persistence.PersistedPacket, error) {
	pk = pk.Copy(true)
	pk.FixedHeader.Dup = false
	pk.ProtocolVersion = 5
	pk.Mods = packets.Mods{}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	default:
		return nil, fmt.Errorf("mochi adapter: cannot store packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return nil, err
	}
	p := &persistence.PersistedPacket{PacketID: pk.PacketID, QoS: pk.FixedHeader.Qos, ProtocolVersion: 5, Data: buf.Bytes()}
	if pk.FixedHeader.Type != packets.Publish {
		p.QoS = 0
	}
	if exp := pk.Properties.MessageExpiryInterval; exp > 0 && pk.Created > 0 {
		p.ExpireAt = time.Unix(pk.Created, 0).Add(time.Duration(exp) * time.Second)
	}
	return p, nil
}

// fromPersisted decodes what toPersisted wrote.
func fromPersisted(p *persistence.PersistedPacket) (packets.Packet, error) {
	var pk packets.Packet
	d := p.Data
	if len(d) < 2 {
		return pk, fmt.Errorf("%w: %d bytes", ErrBadPacket, len(d))
	}
	if err := pk.FixedHeader.Decode(d[0]); err != nil {
		return pk, fmt.Errorf("%w: fixed header: %v", ErrBadPacket, err)
	}
	n, k := binary.Uvarint(d[1:])
	if k <= 0 || k > 4 || int(n) != len(d)-1-k {
		return pk, fmt.Errorf("%w: remaining length", ErrBadPacket)
	}
	rest := d[1+k:]
	pk.FixedHeader.Remaining = len(rest)
	pk.ProtocolVersion = p.ProtocolVersion
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishDecode(rest)
	case packets.Puback:
		err = pk.PubackDecode(rest)
	case packets.Pubrec:
		err = pk.PubrecDecode(rest)
	case packets.Pubrel:
		err = pk.PubrelDecode(rest)
	case packets.Pubcomp:
		err = pk.PubcompDecode(rest)
	default:
		err = fmt.Errorf("packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return pk, fmt.Errorf("%w: %v", ErrBadPacket, err)
	}
	pk.Created = time.Now().Unix()
	if exp := pk.Properties.MessageExpiryInterval; exp > 0 && !p.ExpireAt.IsZero() {
		pk.Created = p.ExpireAt.Add(-time.Duration(exp) * time.Second).Unix()
	}
	return pk, nil
}

// toMessage turns a stored packet of client into Mochi's storage form.
func toMessage(client string, p *persistence.PersistedPacket) (storage.Message, error) {
	pk, err := fromPersisted(p)
	if err != nil {
		return storage.Message{}, err
	}
	props := pk.Properties
	return storage.Message{
		Client:      client,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		PacketID:    pk.PacketID,
		Created:     pk.Created,
		Origin:      pk.Origin,
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			PayloadFormatFlag:      props.PayloadFormatFlag,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			TopicAlias:             props.TopicAlias,
			User:                   props.User,
		},
	}, nil
}
