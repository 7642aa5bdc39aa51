// Package kv implements a whole mqttstore driver connection ([driver.Conn]) once,
// over any ordered key-value engine with transactions ([Engine], [Tx]): the key
// layout, store-wide sequence numbers, cascading deletes, indexed counts, the expiry
// index, schema version checks and group commit. A driver for bbolt, Badger or a
// similar engine only adapts transactions and parses its configuration, then returns
// the [Store] that [Open] makes from its Connector's Connect; see LAYOUT.md for the
// keys.
//
// Writes ([Store.Apply]) go through one group committer: concurrent operations share
// one engine transaction (one fsync), and each commit is reported to the driver
// environment's OnCommit. Each call stays atomic: when one fails, the transaction is
// rolled back and run again without it. Reads run in their own read transactions;
// iterations read bounded pages and call back with no transaction open.
//
// Package kvtest holds the engine-level tests (kill, corruption, schema) a driver
// built on kv runs besides the conformance suite.
package kv
