// Package driver is what a storage driver for mqttstore implements, and the toolkit
// it is built with, as database/sql/driver is for SQL drivers. Brokers never use this
// package: they hold a persistence.Store, which wraps a driver's [Conn] and enforces
// the API's guards (closed store, done context, argument validation, nil callbacks,
// stop-iteration handling) so that no driver re-implements them.
//
// A driver provides:
//
//   - a [Driver], registered with persistence.Register under its URL scheme, that
//     turns a URL into a [Connector] without I/O;
//   - a [Connector] (its typed configuration) that opens a [Conn];
//   - a [Conn]: one method for every write ([Conn.Apply], a list of [Op]), and the
//     reads.
//
// The toolkit: the versioned, checksummed blob codec ([EncodePacket], [DecodePacket],
// … described in FORMAT.md) that turns corruption into [ErrBrokenEntry]; [Options]
// for URL options; [CheckSchema]; MQTT topic matching ([MatchTopic]); the typed
// errors every driver returns. Ordered key-value engines can reuse
// github.com/mqttstore/mqttstore/persistence/kv and only adapt transactions.
//
// Prove a driver right with github.com/mqttstore/mqttstore/conformance.
package driver
