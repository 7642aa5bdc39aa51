// Package kvtest holds the tests every driver built on persistence/kv runs against
// its real engine, from its _test.go files: the contract of its kv.Engine adapter
// alone (EngineContract), a conformance harness over store URLs, the corruption and
// schema tests, and the raw-engine baseline of the benchmarks. Only the
// engine-specific steps (opening the adapter alone, abandoning a store, flipping
// bytes on disk) are the driver's. The crash test every driver runs is
// conformance.RunCrash. The file drivers (bolt, badger) also share the steps of
// their disk-full, in-use, damage and file-mode tests from here.
package kvtest
