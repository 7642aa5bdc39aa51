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
// (with Retained/Match for topic-filter matching), Expiry, System, Errors, Close,
// Context, Concurrency, Batch, Bytes, Model and Durability (Reopen and Crash,
// reported as not applicable when the harness declares no such hook). Model is a
// randomized test that compares the driver with a reference model after every
// operation; a failing sequence prints its seed and the command that reproduces it.
// Every case opens a fresh store and runs under the harness's CaseTimeout, so a
// driver that hangs fails instead of hanging the test binary. Unordered results are
// compared as sets; order is checked only where the API promises it.
//
// [RunBench] runs the standard workloads every driver is measured on.
//
// The suite's own tests run it against deliberately broken drivers (wrappers of the
// in-memory driver's driver.Conn) and check that it catches each of them.
package conformance
