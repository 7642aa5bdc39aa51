// Package packet encodes and decodes MQTT 3.1, 3.1.1 and 5.0 control
// packets. It is the mqttstore broker's codec and a supported public package:
// the packets a store keeps (PersistedPacket.Data) are MQTT wire bytes, and tools
// and other brokers decode them with it ([ReadPacket] over a bytes.Reader).
//
// It is hand-written because the maintained Go MQTT codecs do not fit a
// broker that speaks both versions: paho.golang/packets is 5.0-only and
// paho.mqtt.golang/packets 3.1.1-only, with incompatible types, and the
// codec of mochi-mqtt/server belongs to a competing broker. One set of
// types serves both versions here; version-specific fields are omitted on
// the wire where the version has none.
//
// ReadPacket is the broker's whole input path, so it treats its input as
// hostile: it validates the fixed header flags, the remaining length (at
// most four bytes, minimally encoded), every field and property against
// the specification, checks the size limit before allocating a body, and
// never panics. Failures are *Error values carrying the reason code the
// broker should report before closing the connection.
//
// What ReadPacket does not judge is left to the broker because the
// specification answers it with a per-packet reason code rather than by
// closing the connection, or because it depends on connection state:
// topic name and filter syntax (beyond UTF-8 validity), topic alias
// ranges, whether a client may send a given packet, client identifier
// rules.
package packet
