// Package conformance is the test suite every mqttstore driver must pass: what
// "a correct driver" means. A driver runs it from its own _test.go with one call, as
// testing/fstest.TestFS is used:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
//				cfg := mydriver.Config{Path: filepath.Join(t.TempDir(), "state.db")}
//				s, err := persistence.OpenConnector(context.Background(), cfg, opts...)
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { _ = s.Close() })
//				return s
//			},
//		})
//	}
//
// The [Harness] opens stores of the driver under test as a user does: with
// persistence.OpenConnector from the driver's connector (its typed configuration),
// or with persistence.Open from a URL once the driver is registered. It passes the
// suite's options through: they carry the fake [Clock] the cases read timestamps
// from. A driver that keeps data across Close adds Reopen and Crash, so that the
// Durability cases and the model's restarts run; drivers built on
// github.com/mqttstore/mqttstore/persistence/kv get a ready harness from its kvtest
// package.
//
// The cases call the driver through *persistence.Store, which already enforces the
// API's guards (closed store, done context, argument validation, nil callbacks,
// stop-iteration handling). What they check is the driver's part of the contract
// of driver.Conn: atomic batches, FIFO queues with increasing, never reused sequence
// numbers, typed errors (ErrNotFound, ErrAlreadyExists, …), cascading deletes,
// copies of stored values, callbacks run with no lock held, MQTT topic matching,
// expiry ordering, times kept to the nanosecond, binary-safe ids and topics, and
// what survives a restart or a crash.
//
// [Run] runs hierarchical subtests named by area, so that -run selects any part:
// Sessions, Packets (QoS0, QoS12, Inflight, Incoming, Multi), Subscriptions, Retained
// (with Retained/Match for topic-filter matching at every depth), Expiry, System,
// Errors, Close, Context, Concurrency (concurrent writers on one session: no lost
// update), Batch, Bytes, SharedCommit (a write that fails in a commit shared with
// others takes none of them down; every acknowledged write is read back, one by
// one), Acks (acknowledgements anywhere in a queue, twice, concurrently, with counts
// after every step), Paging (every iteration at page size and ±1, sparse results,
// long queues mostly deleted during an iteration and resumed), Iterators (every
// iteration: cancel between callbacks, wrapped ErrStopIteration, wrapped callback
// errors, Close during the iteration), Schema (a store written by a newer schema is
// refused, through Harness.PlantSchema), Model and Durability (Reopen and Crash).
// Cases whose hook the harness leaves nil report themselves as not applicable.
// Model is a randomized test that compares the driver with a reference model after
// every operation; a failing sequence prints its seed and the command that
// reproduces it. Every rule it checks also has a named case, so a driver author sees
// which promise broke. Every case opens a fresh store and runs under the harness's
// CaseTimeout, so a driver that hangs fails instead of hanging the test binary, and
// the cleanups the harness registers (closing its stores) are bounded by
// CloseTimeout. Unordered results are compared as sets; order is checked only where
// the API promises it.
//
// Close during an iteration: Close may be called while an iteration runs, from its
// callback or from another goroutine, and returns without waiting for the
// iteration; the iteration calls no callback after that and returns an error
// matching persistence.ErrClosed (the Store enforces the second part; a driver's
// Close must not wait for a running iteration's callbacks).
//
// [RunBench] runs the standard workloads every driver is measured on.
//
// The suite's own tests run it against deliberately broken drivers (wrappers of the
// in-memory driver's driver.Conn) and check that it catches each of them; the
// mutation check in conformance/mutation runs 66 more (small bugs planted in the
// in-memory driver and in persistence/kv on bbolt, each naming the promise it
// breaks) and fails for every one that passes a named case.
package conformance
