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
// matching [persistence.ErrInvalidConfig]. [New] builds a store directly, without the
// registry.
//
// Everything is kept in process memory and lost on Close. Within that limit the
// driver keeps every promise of the persistence package: FIFO packet queues with
// store-wide, never reused sequence numbers; deep copies in and out; callbacks run
// with no lock held; atomic [persistence.Batch] commits; an expiry index ordered by
// deadline; [persistence.ErrClosed] on every call after Close.
//
// # Concurrency
//
// A store-wide read/write lock guards the session table: creating, deleting and
// Apply take it exclusively, everything else shares it and then locks only the one
// session it touches, so writers to different sessions run in parallel. The expiry
// index and the retained messages have their own locks. Iterations take the lock for
// one step at a time and release it before calling back.
//
// This package must not import any other driver, the conformance suite or the
// broker: it depends on the persistence package and the standard library only.
package mem
