package conformance

import (
	"testing"
)

// Run runs the whole conformance suite against the driver h describes, as subtests
// of t named by area (Sessions/..., Packets/Inflight/..., Retained/Match/...,
// Durability/Reopen/...), so that -run selects any part of it. Call it from the
// driver's own _test.go:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{New: newStore, Reopen: reopen, Crash: crash})
//	}
//
// Every case bounds itself with h.CaseTimeout, so a driver that hangs fails instead
// of hanging the test binary.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("conformance: Harness.New is required")
	}
	for _, area := range areas {
		t.Run(area.name, func(t *testing.T) { area.run(t, h) })
	}
}

// area is one top-level group of cases.
type area struct {
	name string
	run  func(t *testing.T, h Harness)
}

// areas lists every top-level group, in the order Run runs them.
var areas = []area{
	{"Sessions", runSessions},
	{"Packets", runPackets},
	{"Subscriptions", runSubscriptions},
	{"Retained", runRetained},
	{"Expiry", runExpiry},
	{"System", runSystem},
	{"Errors", runErrors},
	{"Close", runClose},
	{"Context", runContext},
	{"Concurrency", runConcurrency},
	{"Batch", runBatch},
	{"Bulk", runBulk},
	{"Bytes", runBytes},
	{"SharedCommit", runSharedCommit},
	{"Acks", runAcks},
	{"Paging", runPaging},
	{"Iterators", runIterators},
	{"Schema", runSchema},
	{"Repair", runRepair},
	{"Model", runModel},
	{"Durability", runDurability},
	{"SharedStore", runShared},
}
