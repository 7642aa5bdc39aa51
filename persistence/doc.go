// Package persistence is the mqttstore SDK: the interfaces an MQTT broker uses to keep
// its state (sessions, subscriptions, queued and in-flight packets, incoming QoS 2
// state, retained messages, wills and expiry deadlines) in a storage driver chosen by
// name, and the pieces every driver shares (the blob codec, typed errors, topic-filter
// matching, URL option parsing).
//
// It plays the role database/sql plays for SQL drivers: drivers call [Register] from
// their init function and users call [Open] with one URL-style string such as
// "mem://", "bolt:///var/lib/mqtt/state.db?sync=always" or
// "postgres://user@host/db?schema=mqtt".
//
// The interface names follow VolantMQ's persistence API (Provider, Sessions, Packets,
// Subscriptions, State, Expiry, Retained, System); the semantics every driver must
// share are pinned by the conformance package and written down on each method.
//
// Rules that hold for every method of every driver:
//
//   - The first argument is a context. A context that is already done makes the call
//     return ctx.Err() (possibly wrapped) and write nothing.
//   - Missing items: get-style calls (…Get, …Load of one session's data) return an
//     error matching [ErrNotFound]. Deleting a missing item of an existing session (a
//     packet, a subscription, the state, the expiry) is a no-op that returns nil, and
//     so is Sessions.Delete of a missing session.
//   - Every session-scoped call other than Sessions.Delete (packets, subscriptions,
//     state, expiry: reads, writes and deletes alike) on a session that was never
//     created, or was deleted, returns [ErrNotFound]: nothing is created implicitly.
//   - Times come back equal (time.Time.Equal) to what was stored, to the nanosecond,
//     but not necessarily with the same location or monotonic reading.
//   - After Provider.Close every call returns an error matching [ErrClosed]; Close
//     itself is idempotent.
//   - Callbacks of iteration methods run with no lock held: a callback may call any
//     method of the same store. A callback error stops the iteration and is returned;
//     deletions already asked for by earlier callbacks are applied.
//   - Stored values are copies: mutating a slice after passing it in, or after
//     receiving it, changes nothing in the store.
//   - Client identifiers and topics are arbitrary byte strings held in Go strings
//     (NUL, invalid UTF-8 and delimiter bytes included); drivers never interpret them.
//
// This package must not import any driver, the conformance suite or the broker.
package persistence
