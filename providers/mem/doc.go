// Package mem is the in-memory mqttstore driver, registered as "mem": the default
// store for brokers that need no durability, the reference every other driver is
// compared with, and the benchmark baseline.
//
// Importing the package registers the driver:
//
//	import _ "github.com/mqttstore/mqttstore/providers/mem"
//
//	store, err := persistence.Open(ctx, "mem://")
//
// The URL takes no host, path or options; anything else is refused with an error
// matching [persistence.ErrInvalidConfig]. Without a URL:
//
//	store, err := persistence.OpenConnector(ctx, mem.Config{})
//
// Everything is kept in process memory and lost on Close; every open store is a new,
// empty one.
//
// # Concurrency
//
// A store-wide read/write lock guards the session table. A write to one existing
// session (every single call but Create and Delete) takes it shared and then locks
// only that session, so writers to different sessions run in parallel; other writes
// take it exclusively. The expiry index and the retained messages have their own
// locks. Iterations take the lock for one step at a time and release it before
// calling back.
package mem
