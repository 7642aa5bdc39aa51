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
package persistence
