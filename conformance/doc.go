// Package conformance is the test suite every mqttstore driver must pass, run from
// the driver's own _test.go with one call, as testing/fstest.TestFS is:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{New: newStore, Reopen: reopen, Crash: crash})
//	}
//
// [Run] runs hierarchical subtests named by area, so that -run selects any part:
// Sessions, Packets (QoS0, QoS12, Inflight, Incoming, Multi), Subscriptions, Retained
// (with Retained/Match for topic-filter matching), Expiry, System, Errors, Close,
// Context, Concurrency, Batch, Bytes, Model (the randomized model-based test) and
// Durability (Reopen and Crash, reported as not applicable when the harness declares
// no such hook). Each case pins one rule of the persistence package's documentation:
// typed errors, FIFO and never-reused sequence numbers, callbacks run without locks,
// cascading deletes, idempotent Close, context cancellation writing nothing, copies
// of stored values, binary-safe ids and topics, and atomic batches. Every case opens
// a fresh store with a fake [Clock] and runs under the harness's CaseTimeout, so a
// driver that hangs fails instead of hanging the test binary. Unordered results are
// compared as sets; order is checked only where the API promises it.
//
// [RunBench] runs the standard workloads every driver is measured on.
//
// The suite's own tests prove that it catches drivers breaking any one pinned rule,
// with deliberately broken wrappers around the in-memory driver.
//
// This package imports only persistence and the standard library (its tests also
// use providers/mem); it must not import any driver or the broker.
package conformance
