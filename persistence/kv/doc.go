// Package kv implements the whole mqttstore API (persistence.Provider) once, over any
// ordered key-value engine with transactions ([Engine], [Tx]): the key layout,
// store-wide sequence numbers, cascading deletes, indexed counts, the expiry index,
// schema version checks and group commit. A driver for bbolt, Badger or a similar
// engine only adapts transactions and parses its URL; see LAYOUT.md for the keys.
//
// Writes go through one [groupcommit.Committer]: concurrent operations share one
// engine transaction (one fsync). Each operation stays atomic: when one fails, the
// transaction is rolled back and run again without it. Reads run in their own read
// transactions; iterations read bounded pages and call back with no transaction open.
//
// This package imports persistence and persistence/groupcommit only; it must not
// import any driver, engine, the conformance suite or the broker.
package kv
