// Package badger is the mqttstore driver for Badger v4 (github.com/dgraph-io/badger/v4),
// registered as "badger". It is a thin adapter: it opens Badger with options sized
// for a small machine, runs value-log garbage collection in the background and hands
// its transactions to persistence/kv, which implements the whole store (key layout,
// sequence numbers, counts, expiry index, group commit).
//
// Open a store by URL, or from a [Config] without one:
//
//	store, err := persistence.Open(ctx, "badger:///var/lib/mqtt/state?sync=always&memory=default&gc=5m")
//	store, err := persistence.Open(ctx, "badger://?inmemory=true")
//	store, err := persistence.OpenConnector(ctx, &badger.Config{Dir: "/var/lib/mqtt/state", Memory: badger.MemoryLow})
//
// URL options, each a field of [Config]:
//   - sync=always (default): every commit is fsynced before the write returns
//     (Badger SyncWrites); concurrent writers share commits. sync=none leaves the
//     syncing to the OS: a process crash loses nothing, a power loss may.
//   - memory=default|low: memtable, cache and value-log sizes. default suits a
//     2-core machine with a few hundred MB to spare; low roughly quarters it.
//   - gc=5m: how often value-log garbage collection runs.
//   - inmemory=true: keep everything in memory (no path, nothing on disk).
//
// Badger's log goes to the store's logger at warning level and above. The directory
// is created with mode 0700.
//
// Limit: Badger keys hold at most 65000 bytes, so a session id or topic filter longer
// than about 64900 bytes is refused with persistence.ErrInvalidArgument (MQTT allows
// up to 65535). Retained topics of any length are stored.
package badger
