package badger_test

import (
	"path/filepath"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

func dirURL(query string) func(dir string) string {
	return func(dir string) string { return "badger://" + filepath.Join(dir, "db") + "?" + query }
}

// The harness crashes a store with badger.Crash: the database is closed under the
// store without its Close.
func TestConformance(t *testing.T) {
	h := kvtest.Harness(dirURL("sync=always"), badger.Crash)
	h.PlantSchema = kvtest.PlantSchema(dirURL("sync=always"), "badger")
	h.PageSize = 256 // persistence/kv's page
	conformance.Run(t, h)
}

// TestConformanceInMemory runs the suite on badger://?inmemory=true, which keeps
// nothing across Close (no Reopen or Crash).
func TestConformanceInMemory(t *testing.T) {
	h := kvtest.Harness(func(string) string { return "badger://?inmemory=true" }, badger.Crash)
	h.Reopen, h.Crash = nil, nil
	// In-memory Badger refuses values over 1 MiB (the encoded blob adds a header): a
	// physical limit, declared so that the suite's larger payloads are skipped.
	h.Caps.MaxPayload = 1<<20 - 4096
	conformance.Run(t, h)
}

// BenchmarkConformance runs the standard workloads at sync=always and sync=none.
// MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	for _, sync := range []string{"always", "none"} {
		b.Run("sync="+sync, func(b *testing.B) {
			conformance.RunBench(b, kvtest.Harness(dirURL("sync="+sync), badger.Crash))
		})
	}
}
