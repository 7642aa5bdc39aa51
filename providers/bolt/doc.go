// Package bolt is the mqttstore driver for bbolt (go.etcd.io/bbolt), registered as
// "bolt". It is a thin adapter: it opens the bbolt file and hands its transactions to
// persistence/kv, which implements the whole store (key layout, sequence numbers,
// counts, expiry index, group commit).
//
// Open a store by URL, or from a [Config] without one:
//
//	store, err := persistence.Open(ctx, "bolt:///var/lib/mqtt/state.db?sync=always&timeout=2s")
//	store, err := persistence.OpenConnector(ctx, &bolt.Config{Path: "/var/lib/mqtt/state.db", Sync: bolt.SyncAlways})
//
// URL options, each a field of [Config]:
//   - sync=always (default): every commit is fsynced before the write returns;
//     concurrent writers share commits.
//   - sync=batch: commits are not fsynced one by one; the file is fsynced every
//     second. A process crash loses nothing, an OS crash or power loss may lose the
//     last second of writes.
//   - sync=none: never fsync (bbolt NoSync). Only for tests and throwaway state.
//   - timeout=2s: how long opening waits for the file lock held by another process
//     before failing with an error that says the file is locked.
//
// The directory is created with mode 0700 and the file with mode 0600.
//
// Full disk: a commit that cannot be written fails with persistence.ErrStorageFull
// (nothing of it is kept); reads go on, and writes succeed again once space is free.
//
// Damage: an existing file is opened read-only first and every page of the store is
// visited (bbolt rebuilds its free list at open in a goroutine where a damaged page
// is an unrecoverable panic). An empty file where a store existed, a truncated file
// or a damaged page fails the open with an error matching
// persistence.ErrBrokenEntry that names the file, instead of a panic or a silently
// re-created empty store; a page found damaged later fails that call the same way.
//
// Limit: bbolt keys hold at most 32768 bytes, so a session id or topic filter longer
// than about 32000 bytes is refused with persistence.ErrInvalidArgument (MQTT allows
// up to 65535). Retained topics of any length are stored.
package bolt
