// Package kvtest holds the tests every driver built on persistence/kv runs against
// its real engine: a conformance harness over store URLs, the kill test (a child
// process SIGKILLed while it writes with sync=always) and the corruption test. Only
// the engine-specific steps (abandoning a store, flipping bytes on disk) are the
// driver's.
//
// It is imported by drivers' _test.go files only. It imports persistence and the
// conformance suite; it must not import any driver or the broker.
package kvtest
