// Package persistence is the mqttstore SDK: what an MQTT broker uses to keep its
// state (sessions, subscriptions, queued and in-flight packets, incoming QoS 2 state,
// retained messages, wills and expiry deadlines) in a storage driver chosen by name.
//
// It plays the role database/sql plays for SQL drivers. A program imports a driver
// for its side effect of registering itself and opens a [Store] with one URL:
//
//	import _ "github.com/mqttstore/mqttstore/providers/bolt"
//
//	store, err := persistence.Open(ctx, "bolt:///var/lib/mqtt/state.db?sync=always")
//
// or, without a URL, from a driver's typed configuration with [OpenConnector]. The
// [Store] enforces the API's rules for every driver (see its documentation); drivers
// implement the small interfaces of package driver.
//
// [Sessions.Apply] commits several writes, possibly for several sessions, atomically:
// a broker uses it to queue one message for every matching subscriber before it
// acknowledges the publisher, or to move a packet from a queue to in-flight.
//
// Several brokers may share one store when its driver can be shared
// ([Store.Shared], e.g. PostgreSQL): each broker is a node holding a lease
// ([Nodes.Renew]); a session is owned by one node at a time ([Sessions.Claim],
// [Sessions.Takeover]); and [Batch.Fence] makes a write conditional on the writer
// still owning the session, checked by the store in the write's own transaction,
// so a node that lost a session gets [ErrFenced] and changes nothing:
//
//	o, err := store.Sessions().Takeover(ctx, clientID, node)
//	...
//	var b persistence.Batch
//	b.Fence(o).PacketDelete(clientID, persistence.ClassUnAck, seq)
//	_, err = store.Sessions().Apply(ctx, &b) // errors.Is(err, persistence.ErrFenced): the session moved
//
// Drivers that cannot be shared (mem, bolt, badger) answer these calls with
// [ErrNotSupported], and refuse a second open of their file with [ErrInUse].
package persistence
