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
// Full disk: Badger writes its write-ahead log and its tables through memory maps
// of files it sizes without allocating them, and on a full file system a store
// into such a page kills the process with SIGBUS instead of returning an error.
// The driver therefore:
//   - refuses a write with persistence.ErrStorageFull (nothing written) when it
//     would leave less than a reserve free on the directory's file system: 44 MiB
//     with memory=low, 144 MiB with memory=default (room for the logs, the flush
//     of every memtable and a few tables of compaction);
//   - allocates the write-ahead logs before Badger writes into them (Linux,
//     fallocate): the current log when the store opens, and the file of the next
//     log before every write, refusing the write with ErrStorageFull when that
//     space cannot be had. So another process that fills the disk to the last
//     byte after the check does not kill the writer: the log's pages exist. This
//     takes 4 × the memtable size of disk (64 MiB with memory=low, 256 MiB with
//     memory=default), and at sync=none about 30% of a single writer's append
//     rate on ext4 (BENCH.md);
//   - gives the next log's space back just before Badger, closing, writes its
//     memtable to a table, so a store closed on a full disk has room for that.
//
// Reads go on; writes are taken again as soon as space is free. What remains:
// tables written by Badger's own flush and compaction goroutines, and values of
// 1 MiB and more (which go to Badger's value log), are written into files that
// are not allocated in advance (Badger's table.CreateTable and value log size
// them with ftruncate through ristretto's z.OpenMmapFile and write them at once;
// no option changes that). Another process taking the reserve's last bytes while
// a flush or compaction runs can still kill the process with SIGBUS: keep the
// store on a file system of its own. TestDiskFullOtherWriter fills a tmpfs under
// a writer in a child process and checks that it lives, with and without the
// space check.
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
