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
// is created with mode 0700; Badger creates its files 0644, and the driver sets them
// to 0600 when it opens and closes the store and every 10 s while it runs (the
// directory's mode keeps other users out in between).
//
// Full disk: Badger writes its log and tables through memory maps of files it has
// sized but not allocated, and on a full file system such a write kills the process
// with SIGBUS instead of returning an error. The driver therefore refuses a write
// with persistence.ErrStorageFull (nothing written) when it would leave less than a
// reserve free on the directory's file system: 44 MiB with memory=low, 144 MiB with
// memory=default (room for the current and next log, the flush of every memtable and
// a few tables of compaction). Reads go on; writes are taken again as soon as space
// is free. Another process filling the disk to the last byte while Badger flushes or
// compacts can still kill it: keep the store on a file system of its own.
//
// Damage: before Badger opens a directory, the driver replays its MANIFEST and opens
// every table it lists, verifying every block's checksum, on the caller's goroutine
// (Badger opens tables in goroutines of its own, where a damaged one is a panic no
// caller can recover, and it skips a table whose checksum fails, silently losing
// what it held). A damaged or missing table, an unreadable MANIFEST, or a MANIFEST
// missing beside a store's files fails the open with an error matching
// persistence.ErrBrokenEntry that names the file. Blocks are verified again when
// read, and value-log entries too; panics and memory faults in Badger calls on the
// caller's goroutine are returned as persistence.ErrBrokenEntry. Verifying every
// table makes opening a large store read all of it once.
//
// Limit: Badger keys hold at most 65000 bytes, so a session id or topic filter longer
// than about 64900 bytes is refused with persistence.ErrInvalidArgument (MQTT allows
// up to 65535). Retained topics of any length are stored.
package badger
